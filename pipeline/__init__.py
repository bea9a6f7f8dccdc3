"""How the pipeline is wired: its parameters (the one table), the DAG built from them, and compilation
to pipeline.yaml. The command line that runs and submits it is the `cli` package."""
