"""Hand a run over to other trainers: verl parquet, reward module and launch script."""
