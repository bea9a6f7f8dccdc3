"""`rlhf-pipeline chat`: answer prompts with the tuned policy of a local run."""

from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="answer prompts with the tuned policy of a local run",
        description="Loads the tuned policy of a finished `rlhf-pipeline run` (RUN_DIR/policy, a Hugging Face "
        "model directory with LoRA merged) and answers each prompt given on the command line or in a file, "
        "with the run's instruction and, when the model has one, its chat template, as the evaluation "
        "prompts it.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory, e.g. rlhf-runs/run-20261202-144120")
    parser.add_argument("prompts", nargs="*", metavar="PROMPT",
                        help="prompts to answer, right after RUN_DIR (the run's instruction goes before each)")
    parser.add_argument("--file", metavar="PATH", help="answer the prompts of this prompt dataset (.jsonl rows with "
                        "input_text, prompt or messages, as the pipeline reads them)")
    parser.add_argument("--limit", type=int, metavar="N", help="answer only the first N prompts of --file")
    parser.add_argument("--temperature", type=float, metavar="T",
                        help="sampling temperature; 0 answers greedily (default: the run's sampling_temperature)")
    parser.add_argument("--max-new-tokens", type=int, metavar="N",
                        help="longest answer in tokens (default: the run's target_sequence_length)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling (default: 0)")
    parser.set_defaults(func=main)


def main(args) -> int:
    from components.common.errors import UserInputError
    from cli.tuned_policy import TunedPolicy, prompts_from_file, prompts_from_text, run_settings

    if not args.prompts and not args.file:
        raise UserInputError("give prompts to answer, or --file PATH")
    settings = run_settings(args.run_dir)
    prompts = prompts_from_text(args.prompts, settings)
    if args.file:
        prompts += prompts_from_file(args.file, settings)[:args.limit]
    policy = TunedPolicy(settings)
    temperature = settings.sampling_temperature if args.temperature is None else args.temperature
    max_new_tokens = args.max_new_tokens or settings.target_sequence_length
    answers = policy.answer(prompts, temperature, max_new_tokens, args.seed)
    for number, (prompt, answer) in enumerate(zip(prompts, answers), start=1):
        if number > 1:
            print()
        print(f"[{number}] {prompt.text.strip()}")
        print(f"=> {answer}" if answer else "=> (no answer: the model ended its reply at once)")
    return 0
