"""The RLHF pipeline: DAG, parameters, compile / run / submit entry points."""
