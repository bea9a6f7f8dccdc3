"""`rlhf-pipeline plan`: the memory each training step of a run needs on one device, before any money is spent.

The parameters come as `run` takes them (--params, --set, --sample-task). The device is the Vertex
accelerator `accelerator_type` names ('GPU': NVIDIA_TESLA_A100, as `submit` resolves it), or with
--local this machine (its GPU, else its RAM). `submit` and `run` refuse a plan that does not fit.
"""

import sys

from cli.commands.parameter_values import add_parameter_value_options
from cli.local_run import sample_tasks


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="print the memory each training step needs per device, and whether it fits",
        description="Plans the memory of every training step a run would execute (weights, gradients, "
        "optimizer state, activations, KV cache) from the models' config.json, without loading or downloading "
        "weights, and compares it with the memory of the accelerator `accelerator_type` names on Vertex AI "
        "('GPU': NVIDIA_TESLA_A100), or with --local this machine's. Exits 1 when a step does not fit, with "
        "the cheapest setting that does.",
    )
    add_parameter_value_options(parser)
    parser.add_argument("--sample-task", choices=list(sample_tasks()), default=None,
                        help="plan a bundled sample task's settings (the default when no dataset is given); "
                        "--params and --set values go on top")
    parser.add_argument("--local", action="store_true",
                        help="plan for this machine (its first CUDA GPU, else its RAM) instead of the Vertex accelerator")
    parser.set_defaults(func=main)


def main(args) -> int:
    from cli.local_run import local_parameter_values
    from cli.memory_plan.fit import local_device, memory_problem, plan_for, training_processes, vertex_device, with_defaults
    from cli.memory_plan.tables import step_table
    from components.common.errors import UserInputError

    values, _ = local_parameter_values(args.params, args.sets, args.sample_task)
    accelerator = values.get("accelerator_type", "GPU")
    device = local_device() if args.local else vertex_device(accelerator)
    if device is None:
        raise UserInputError(f"the memory of accelerator_type {accelerator} is not known here; name a Vertex "
                             "accelerator (e.g. NVIDIA_A100_80GB) or plan this machine with --local")
    processes = training_processes(with_defaults(values))
    print("\n\n".join(step_table(plan, device, processes) for plan in plan_for(values, device)))
    problem = memory_problem(values, device)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0
