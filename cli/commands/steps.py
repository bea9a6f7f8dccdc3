"""`rlhf-pipeline steps`: the step count the pipeline derives from a dataset size."""

from components.common.steps import DEFAULT_BATCH_SIZE, derive_train_steps


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "steps",
        help="print the training steps derived from a dataset size",
        description="Prints ceil(dataset_size / batch_size) * epochs, the count the pipeline uses "
        "when reward_model_train_steps or reinforcement_learning_train_steps is 0.",
    )
    parser.add_argument("--dataset-size", type=int, required=True, help="rows in the training data")
    parser.add_argument("--epochs", type=int, required=True, help="passes over the data")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="rows per step (default 64)")
    parser.set_defaults(func=main)


def main(args) -> int:
    print(derive_train_steps(args.dataset_size, args.epochs, args.batch_size))
    return 0
