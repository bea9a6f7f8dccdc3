# One image for every component of the RLHF pipeline.
#   CPU (default):  docker build -t rlhf-pipeline:0.1.0 .
#   CUDA:           docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t rlhf-pipeline:0.1.0-cu128 .
#   CUDA with vLLM rollouts (rollout_engine auto/vllm):
#                   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 --build-arg EXTRAS=vllm \
#                     -t rlhf-pipeline:0.1.0-cu128-vllm .
# Then compile the pipeline against the pushed image: python compile.py --image REGISTRY/rlhf-pipeline:TAG
FROM python:3.11.7-slim-bookworm

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# "" or "vllm": the package's optional extras (vLLM brings torchvision, taken from torch's index to match its build)
ARG EXTRAS=""
ARG TORCHVISION_VERSION=0.28.0

# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    TOKENIZERS_PARALLELISM=false

WORKDIR /opt/rlhf-pipeline

# torch first, from the index of the chosen build (CPU or CUDA); the package pins the same version.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
        ${EXTRAS:+"torchvision==${TORCHVISION_VERSION}"}

COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY cli ./cli
COPY components ./components
COPY embedded_default ./embedded_default
# the package, with its extras where asked (their versions are pinned in pyproject.toml)
# hadolint ignore=DL3013
RUN pip install ".${EXTRAS:+[${EXTRAS}]}" && rlhf-pipeline steps --dataset-size 3000 --epochs 30
