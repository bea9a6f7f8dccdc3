"""The `rlhf-pipeline` command: local runs through kfp.local, submission to Vertex AI or Kubeflow,
and the tools around them (run directories, chat, parameter help, data validation)."""
