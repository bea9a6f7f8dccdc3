"""The container image the components run in, built from Dockerfile."""

from importlib import metadata

from components.common.code_version import PACKAGE_NAME

IMAGE_REPOSITORY = "rlhf-pipeline"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{metadata.version(PACKAGE_NAME)}"
