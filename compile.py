"""Compile the RLHF pipeline to a KFP / Vertex AI pipeline spec.

    python compile.py [--output pipeline.yaml] [--image REGISTRY/rlhf-pipeline:TAG]

The output is byte-identical for the same source tree, kfp version and image.
"""

import argparse
import sys

from pipeline.compilation import compile_pipeline
from pipeline.image import DEFAULT_IMAGE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="pipeline.yaml", help="where to write the spec (default: pipeline.yaml)")
    parser.add_argument(
        "--image",
        default=DEFAULT_IMAGE,
        help=f"container image every component runs in, built from Dockerfile (default: {DEFAULT_IMAGE})",
    )
    args = parser.parse_args(argv)
    compile_pipeline(args.output, image=args.image)
    print(f"wrote {args.output} (image {args.image})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
