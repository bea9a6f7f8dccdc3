"""Compiled pipeline templates for the submission tests."""

from pathlib import Path

REGISTRY_IMAGE = "us-central1-docker.pkg.dev/fake-project/rlhf/rlhf-pipeline:test"

COURSE_PARAMETER_VALUES = {  # the public course's `parameter_values`, verbatim in content
    "preference_dataset": "gs://vertex-ai/generative-ai/rlhf/text_small/summarize_from_feedback_tfds/comparisons/train/*.jsonl",
    "prompt_dataset": "gs://vertex-ai/generative-ai/rlhf/text_small/reddit_tfds/train/*.jsonl",
    "eval_dataset": "gs://vertex-ai/generative-ai/rlhf/text_small/reddit_tfds/val/*.jsonl",
    "large_model_reference": "llama-2-7b",
    "reward_model_train_steps": 1410,
    "reinforcement_learning_train_steps": 320,
    "reward_model_learning_rate_multiplier": 1.0,
    "reinforcement_learning_rate_multiplier": 1.0,
    "kl_coeff": 0.1,
    "instruction": "Summarize in less than 50 words",
}


def compile_rlhf_template(directory: Path, image: str = REGISTRY_IMAGE) -> Path:
    """The project's pipeline compiled against an image in a registry, as a user compiles it."""
    from pipeline.compilation import compile_pipeline

    return compile_pipeline(Path(directory) / "pipeline.yaml", image=image)


def add_course_datasets(gcs, rows: int = 30) -> None:
    """Small Vertex-format datasets at the course's Cloud Storage paths."""
    import json

    pairs = "\n".join(json.dumps({"input_text": f"Post {i}: my cat ignores me. [summary]: ",
                                  "candidate_0": f"A cat ignores its owner ({i}).",
                                  "candidate_1": "Cats.", "choice": i % 2}) for i in range(rows))
    prompts = "\n".join(json.dumps({"input_text": f"Post {i}: the bus was late again. [summary]: "})
                        for i in range(rows))
    root = "generative-ai/rlhf/text_small"
    gcs.add_object("vertex-ai", f"{root}/summarize_from_feedback_tfds/comparisons/train/part-00000.jsonl",
                   pairs.encode())
    gcs.add_object("vertex-ai", f"{root}/reddit_tfds/train/part-00000.jsonl", prompts.encode())
    gcs.add_object("vertex-ai", f"{root}/reddit_tfds/val/part-00000.jsonl", prompts.encode())
