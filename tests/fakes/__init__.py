"""Real-protocol peers on 127.0.0.1 for the submission tests: the GCE metadata server, the Cloud
Storage JSON API, the Vertex AI REST API, Cloud Resource Manager over gRPC, and the Kubeflow
Pipelines v2beta1 REST API. Each records the requests it receives for the tests to assert on."""
