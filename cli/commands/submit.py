"""`rlhf-pipeline submit`: run the compiled pipeline on Vertex AI Pipelines or a self-hosted Kubeflow.

Everything that can be checked here is checked before a request leaves this machine: the template's
images, every parameter (names, types, required ones, impossible values), the memory plan (each
training step must fit the accelerator: cli/memory_plan/), the datasets and the reward function.
"""

import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from components.common.errors import UserInputError
from cli.commands.parameter_values import add_parameter_value_options
from cli.submission.progress import DEFAULT_POLL_SECONDS, follow, plain_console, report_end
from pipeline.resources import DEFAULT_REPLICA_COUNT, GPU, KUBEFLOW, VERTEX, accelerator_for_target
from cli.submission.template import DEFAULT_TEMPLATE, inputs_from_spec, load_template, template_images
from pipeline.kubeflow_train_jobs import DEFAULT_RUNTIME

TARGETS = (VERTEX, KUBEFLOW)
VERTEX_ONLY = ("project", "location", "network", "labels", "encryption_key", "api_endpoint")
KUBEFLOW_ONLY = ("host", "namespace", "shared_volume", "training_runtime")
REQUIRED = {VERTEX: ("project", "location", "pipeline_root"), KUBEFLOW: ("host",)}
ENCRYPTION_PARAMETER = "encryption_spec_key_name"
ACCELERATOR_PARAMETER = "accelerator_type"
REPLICA_PARAMETER = "replica_count"
# what the machines of a training step are: Vertex worker pools read the first three, TrainJob nodes all five
MACHINE_PARAMETERS = (REPLICA_PARAMETER, ACCELERATOR_PARAMETER, "accelerator_count", "cpu_limit", "memory_limit")


def _note(text: str) -> None:
    """Progress notes go to stderr; stdout holds what the command produces (resource names, a request)."""
    print(text, file=sys.stderr)


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="submit the compiled pipeline to Vertex AI Pipelines or a self-hosted Kubeflow",
        description="Checks the template, every parameter, the datasets and the reward function, then submits "
        "the compiled pipeline to Vertex AI Pipelines (--target vertex) or Kubeflow Pipelines (--target kfp). "
        "Credentials for Vertex AI are the Application Default Credentials.",
    )
    parser.add_argument("--target", choices=TARGETS, required=True, help="vertex (Vertex AI Pipelines) or kfp")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE,
                        help="compiled pipeline spec (default: the repository's pipeline.yaml)")
    add_parameter_value_options(parser)
    parser.add_argument("--skip-data-check", action="store_true",
                        help="do not read the datasets nor load the reward function before submitting")
    parser.add_argument("--display-name", help="name of the job or run (default: the pipeline's name)")
    parser.add_argument("--experiment", help="Vertex AI experiment or Kubeflow experiment to file the run under")
    parser.add_argument("--no-cache", action="store_true",
                        help="run every step even if a cached result exists (default: the template's settings)")
    parser.add_argument("--service-account", help="service account the job runs as")
    parser.add_argument("--pipeline-root", help="where outputs go: gs://BUCKET/PATH (required on Vertex AI)")
    parser.add_argument("--dry-run", action="store_true", help="print the request instead of sending it")
    parser.add_argument("--wait", action="store_true", help="follow the job to its end, with progress")
    parser.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_SECONDS, metavar="SECONDS",
                        help=f"seconds between state checks with --wait (default: {DEFAULT_POLL_SECONDS:g})")
    vertex = parser.add_argument_group("Vertex AI (--target vertex)")
    vertex.add_argument("--project", help="Google Cloud project")
    vertex.add_argument("--location", help="region, e.g. us-central1")
    vertex.add_argument("--network", help="VPC to peer with: projects/PROJECT_NUMBER/global/networks/NAME")
    vertex.add_argument("--labels", help="job labels: KEY=VALUE[,KEY=VALUE...]")
    vertex.add_argument("--encryption-key", help="Cloud KMS key for the job (and, through the "
                        "encryption_spec_key_name parameter, the uploaded model)")
    vertex.add_argument("--api-endpoint", help="Vertex AI API endpoint (default: LOCATION-aiplatform.googleapis.com)")
    kubeflow = parser.add_argument_group("Kubeflow Pipelines (--target kfp)")
    kubeflow.add_argument("--host", help="Kubeflow Pipelines API URL, e.g. http://localhost:8080")
    kubeflow.add_argument("--namespace", help="Kubernetes namespace of a multi-user deployment")
    kubeflow.add_argument("--shared-volume", metavar="CLAIM",
                          help="with replica_count above 1: the ReadWriteMany PersistentVolumeClaim through which a "
                          "training step and the nodes of its Kubeflow Trainer TrainJob share files")
    kubeflow.add_argument("--training-runtime", metavar="NAME",
                          help=f"the ClusterTrainingRuntime of those TrainJobs (default: {DEFAULT_RUNTIME})")
    parser.set_defaults(func=main)


def check_options(args) -> None:
    """Refuse options that the target does not take, and missing required ones."""
    other = KUBEFLOW_ONLY if args.target == VERTEX else VERTEX_ONLY
    misplaced = [_option(name) for name in other if getattr(args, name)]
    if misplaced:
        raise UserInputError(f"{', '.join(misplaced)} do(es) not apply to --target {args.target}")
    missing = [_option(name) for name in REQUIRED[args.target] if not getattr(args, name)]
    if missing:
        raise UserInputError(f"--target {args.target} needs {', '.join(missing)}")
    if args.poll_interval <= 0:
        raise UserInputError(f"--poll-interval must be positive, got {args.poll_interval:g}")


def check_images(spec: dict, template: Path) -> None:
    """Refuse a template whose components run in an image that no cluster can pull."""
    local = sorted(image for image in template_images(spec) if "/" not in image)
    if local:
        raise UserInputError(
            f"{template} runs its steps in {', '.join(local)}, an image that exists only where it was built; "
            "build and push the image to a registry (see README), compile against it with `python compile.py "
            "--image REGISTRY/PATH/rlhf-pipeline:TAG --output pipeline.yaml`, and submit that template")


def _encryption_key(args, values: dict[str, Any], inputs) -> str | None:
    """One key for the job and the uploaded model, from --encryption-key or the parameter."""
    parameter = values.get(ENCRYPTION_PARAMETER)
    if args.encryption_key and parameter and parameter != args.encryption_key:
        raise UserInputError(f"--encryption-key {args.encryption_key} differs from the parameter "
                             f"{ENCRYPTION_PARAMETER}={parameter}; give one key")
    if args.encryption_key and ENCRYPTION_PARAMETER in inputs:
        values[ENCRYPTION_PARAMETER] = args.encryption_key
    return args.encryption_key or parameter or None


def _resolve_accelerator(target: str, values: dict[str, Any], inputs) -> None:
    if ACCELERATOR_PARAMETER not in inputs:
        return
    given = values.get(ACCELERATOR_PARAMETER, inputs[ACCELERATOR_PARAMETER].default)
    resolved = accelerator_for_target(given, target)
    if resolved != given or ACCELERATOR_PARAMETER in values:
        values[ACCELERATOR_PARAMETER] = resolved
    if resolved != given:
        _note(f"accelerator_type {given} -> {resolved}")


def _vertex_settings(args, values: dict[str, Any], inputs):
    from cli.submission import vertex

    settings = vertex.VertexSettings(
        project=args.project, location=args.location, pipeline_root=args.pipeline_root,
        template_path=args.template, display_name=args.display_name, service_account=args.service_account,
        network=args.network, labels=vertex.parse_labels(args.labels), experiment=args.experiment,
        enable_caching=False if args.no_cache else None, encryption_key=_encryption_key(args, values, inputs),
        api_endpoint=args.api_endpoint,
    )
    problems = settings.problems()
    if problems:
        raise UserInputError("; ".join(problems))
    return settings


def _kubeflow_settings(args):
    from cli.submission import kubeflow

    return kubeflow.KubeflowSettings(
        host=args.host, template_path=args.template, namespace=args.namespace, experiment=args.experiment,
        display_name=args.display_name, pipeline_root=args.pipeline_root, service_account=args.service_account,
        enable_caching=False if args.no_cache else None,
    )


def _across_machines(args, spec: dict, values: dict[str, Any], inputs, settings, scratch: Path):
    """The template and settings to submit: as given, or with replica_count above 1 the pipeline compiled again
    (into `scratch`) with its training steps on that many machines: Vertex AI custom jobs
    (pipeline/vertex_custom_jobs.py) or Kubeflow TrainJobs (pipeline/kubeflow_train_jobs.py)."""
    given = {name: values.get(name, inputs[name].default) for name in MACHINE_PARAMETERS if name in inputs}
    machines = given.get(REPLICA_PARAMETER, DEFAULT_REPLICA_COUNT)
    if machines == DEFAULT_REPLICA_COUNT:
        if args.target == KUBEFLOW and (args.shared_volume or args.training_runtime):
            raise UserInputError(f"--shared-volume and --training-runtime are for training steps on several "
                                 f"machines; replica_count is {machines}")
        return spec, settings
    if args.target == KUBEFLOW and not args.shared_volume:
        raise UserInputError(f"replica_count {machines}: on Kubeflow the training steps run as Kubeflow Trainer "
                             "TrainJobs whose nodes share the step's files on a ReadWriteMany PersistentVolumeClaim; "
                             "name it with --shared-volume CLAIM")
    from pipeline.compilation import compile_pipeline
    from pipeline.kubeflow_train_jobs import TrainJobPlacement
    from pipeline.vertex_custom_jobs import WorkerPools

    images = template_images(spec)
    if len(images) != 1:
        raise UserInputError(f"{args.template} runs its steps in {len(images)} images ({', '.join(sorted(images))}); "
                             "replica_count above 1 compiles the pipeline again for one image")
    image = images.pop()
    if args.target == KUBEFLOW:
        placement = TrainJobPlacement.from_values(given, claim=args.shared_volume, image=image,
                                                  runtime=args.training_runtime or DEFAULT_RUNTIME)
        path = compile_pipeline(scratch / "pipeline-kubeflow-train-jobs.yaml", image=image, train_jobs=placement)
    else:
        placement = WorkerPools.from_values(given)
        path = compile_pipeline(scratch / "pipeline-vertex-custom-jobs.yaml", image=image, worker_pools=placement)
    flavour = load_template(path)
    program = _program(flavour, image)
    if program != _program(spec, image, keep=program[1]):
        raise UserInputError(f"{args.template} was compiled from other code or defaults than this checkout's, and "
                             "replica_count above 1 compiles the pipeline again from this checkout; compile the "
                             f"template here (`python compile.py --image {image} --output FILE`) and submit that")
    where = "as Vertex AI custom jobs on " if args.target == VERTEX else "on "
    _note(f"replica_count {machines}: the training steps run {where}{placement.describe()}")
    return flavour, dataclasses.replace(settings, template_path=path)


def _program(spec: dict, image: str, keep=None) -> tuple:
    """What a template runs, for comparing two compilations: its inputs, its executors in `image` (those named
    in `keep` only) without their environment and resources (which the flavours set), and the code version in
    the cache keys (one for every task: pipeline/dag.py)."""
    executors = {name: {**executor["container"], "env": None, "resources": None}
                 for name, executor in spec.get("deploymentSpec", {}).get("executors", {}).items()
                 if executor.get("container", {}).get("image") == image and (keep is None or name in keep)}
    tasks = spec["root"].get("dag", {}).get("tasks", {}).values()
    versions = {task["inputs"]["parameters"]["code_version"]["runtimeValue"].get("constant") for task in tasks
                if "code_version" in task.get("inputs", {}).get("parameters", {})}
    return spec["root"].get("inputDefinitions"), executors, versions


def prepare(args, scratch: Path):
    """The template spec, the checked parameter values and the target's settings (a template compiled for
    several machines goes into `scratch`).

    Raises UserInputError on any problem, before any request is sent (the data check reads datasets
    on Cloud Storage only once everything else has passed)."""
    from cli.memory_plan.fit import check_memory, vertex_device
    from cli.submission.datasets import check_datasets, check_reward_function
    from cli.submission.parameter_file import load_parameter_values
    from cli.submission.validation import validate_parameter_values

    check_options(args)
    spec = load_template(args.template)
    check_images(spec, args.template)
    inputs = inputs_from_spec(spec)
    values = validate_parameter_values(load_parameter_values(args.params, args.sets), inputs)
    _resolve_accelerator(args.target, values, inputs)
    settings = _vertex_settings(args, values, inputs) if args.target == VERTEX else _kubeflow_settings(args)
    check_memory(values, vertex_device(values.get(ACCELERATOR_PARAMETER, GPU)), note=_note)
    spec, settings = _across_machines(args, spec, values, inputs, settings, scratch)
    if not args.skip_data_check:
        check_datasets(values, report=_note)
        check_reward_function(values, report=_note)
        _fill_fingerprints(values, inputs)
    return spec, values, settings


def _fill_fingerprints(values: dict[str, Any], inputs) -> None:
    """The data stages' cache keys see the data, not only its path (cli/fingerprint.py).

    Only with the data check: with --skip-data-check the paths may exist only inside the image,
    and the data stages' cache then keys on the dataset paths alone."""
    from cli.fingerprint import FINGERPRINTED, fingerprint
    from cli.submission.datasets import as_gcs_uri

    for name, datasets in FINGERPRINTED.items():
        if name in inputs:
            values[name] = fingerprint([as_gcs_uri(str(values[d])) for d in datasets if values.get(d)])


def _task_count(spec: dict) -> int:
    return len(spec.get("root", {}).get("dag", {}).get("tasks", {}))


def _submit_vertex(args, spec: dict, values: dict[str, Any], settings) -> int:
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions

    from cli.submission import vertex

    if args.dry_run:
        from google.auth.credentials import AnonymousCredentials

        job = vertex.build_job(settings, values, spec, credentials=AnonymousCredentials())
        print(json.dumps(vertex.request_body(job, settings), indent=2, sort_keys=True))
        return 0
    try:
        job = vertex.build_job(settings, values, spec)
        resource_name, link = vertex.submit_job(job, settings)
    except auth_exceptions.DefaultCredentialsError as error:
        raise UserInputError(f"no Google Cloud credentials ({str(error).splitlines()[0]}); run `gcloud auth "
                             "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS") from None
    except api_exceptions.GoogleAPICallError as error:
        raise UserInputError(f"Vertex AI refused the job: {error}") from None
    print(f"submitted: {resource_name}")
    print(f"console: {link}")
    if not args.wait:
        return 0
    return report_end(follow(vertex.status_poller(job, spec), _task_count(spec), args.poll_interval,
                             plain_console()))


def _submit_kubeflow(args, spec: dict, values: dict[str, Any], settings) -> int:
    from cli.submission import kubeflow

    if args.dry_run:
        print(json.dumps(kubeflow.request_body(settings, values, spec), indent=2, sort_keys=True))
        return 0
    client = kubeflow.connect(settings)
    run_id, link = kubeflow.submit_run(client, settings, values, spec)
    print(f"submitted: run {run_id}")
    print(f"console: {link}")
    if not args.wait:
        return 0
    return report_end(follow(kubeflow.status_poller(client, run_id), _task_count(spec), args.poll_interval,
                             plain_console()))


def main(args) -> int:
    with tempfile.TemporaryDirectory(prefix="rlhf-submit-") as scratch:
        spec, values, settings = prepare(args, Path(scratch))
        if args.target == VERTEX:
            return _submit_vertex(args, spec, values, settings)
        return _submit_kubeflow(args, spec, values, settings)
