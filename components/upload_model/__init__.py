"""The last stage on Vertex AI: the tuned policy into the Model Registry and, when asked, onto an endpoint."""
