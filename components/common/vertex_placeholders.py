"""Vertex AI's run placeholders: values that only a pipeline run on Vertex fills in."""

PROJECT_PLACEHOLDER = "{{$.pipeline_google_cloud_project_id}}"
LOCATION_PLACEHOLDER = "{{$.pipeline_google_cloud_location}}"
_PREFIX = "{{$."


def is_vertex_placeholder(value) -> bool:
    """Whether `value` is an unresolved Vertex placeholder such as PROJECT_PLACEHOLDER."""
    return isinstance(value, str) and value.startswith(_PREFIX)


def on_vertex(project: str, location: str) -> bool:
    """Whether a step runs on Vertex AI: both project and location are real values."""
    return all(value and not is_vertex_placeholder(value) for value in (project, location))
