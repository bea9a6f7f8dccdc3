"""Submitting the compiled pipeline to Vertex AI Pipelines or a self-hosted Kubeflow, after checking
every parameter against the template and the datasets it can reach, so that mistakes cost nothing."""
