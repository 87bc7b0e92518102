"""Prefect flows of emdask: image-set compression and mixture fitting, run on a Dask cluster."""
