"""Uploading a training step's TensorBoard logs to a Vertex AI TensorBoard instance.

The SDK's own uploader (`aiplatform.upload_tb_log`) imports TensorFlow, which this PyTorch image
does not hold; the scalars are read with the `tensorboard` package instead and written through the
SDK's TensorBoard resources (one experiment per pipeline run, one run per training step).
"""

import re
from collections import defaultdict
from typing import Callable

from components.common.vertex_placeholders import on_vertex

WRITE_BATCH_POINTS = 1000  # data points per WriteTensorboardRunData request


def read_scalars(log_dir: str) -> dict[str, list[tuple[int, float, float]]]:
    """Every scalar series of the event files under `log_dir`: tag -> [(step, wall_time, value)]."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    multiplexer = EventMultiplexer(size_guidance={"scalars": 0, "tensors": 0})
    multiplexer.AddRunsFromDirectory(log_dir)
    multiplexer.Reload()
    series: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for run in multiplexer.Runs():
        accumulator = multiplexer.GetAccumulator(run)
        tags = accumulator.Tags()
        for tag in tags.get("scalars", []):
            series[tag] += [(e.step, e.wall_time, e.value) for e in accumulator.Scalars(tag)]
        for tag in tags.get("tensors", []):  # torch's SummaryWriter may store scalars as tensors
            from tensorboard.util import tensor_util

            for event in accumulator.Tensors(tag):
                value = tensor_util.make_ndarray(event.tensor_proto)
                if value.size == 1:
                    series[tag].append((event.step, event.wall_time, float(value.reshape(-1)[0])))
    return {tag: sorted(points) for tag, points in series.items()}


def _resource_id(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:128] or "run"


def upload_tensorboard_logs(log_dir: str, tensorboard_resource_id: str, project: str, location: str,
                            experiment_name: str, run_name: str = "training",
                            log: Callable[[str], None] = print, api_endpoint: str | None = None) -> int:
    """Upload the scalars under `log_dir`; returns the number of points written (0 when skipped).

    A no-op with a log line when `tensorboard_resource_id` is empty or the run is not on Vertex AI.
    `tensorboard_resource_id` is an id or a full `projects/P/locations/L/tensorboards/ID` name.
    """
    if not tensorboard_resource_id:
        log("no tensorboard_resource_id: the training logs stay in the pipeline's artifacts only")
        return 0
    if not on_vertex(project, location):
        log(f"not on Vertex AI: would upload {log_dir} to TensorBoard {tensorboard_resource_id}")
        return 0
    from google.api_core import exceptions
    from google.cloud import aiplatform
    from google.cloud.aiplatform.compat.types import tensorboard_data, tensorboard_time_series
    from google.protobuf import timestamp_pb2

    scalars = read_scalars(log_dir)
    if not scalars:  # a stage that did not train (skipped supervised fine-tuning or reward model)
        log(f"{run_name}: no scalars in {log_dir}, nothing to upload")
        return 0
    aiplatform.init(project=project, location=location, api_endpoint=api_endpoint, api_transport="rest")
    tensorboard = aiplatform.Tensorboard(tensorboard_resource_id)
    experiment_id, run_id = _resource_id(experiment_name), _resource_id(run_name)
    try:  # the steps of one pipeline run share its experiment: the first creates it
        experiment = aiplatform.TensorboardExperiment.create(
            tensorboard_experiment_id=experiment_id, tensorboard_name=tensorboard.resource_name,
            display_name=experiment_name)
    except exceptions.Conflict:  # ALREADY_EXISTS; over REST the SDK raises by HTTP status: 409 -> Conflict
        experiment = aiplatform.TensorboardExperiment(f"{tensorboard.resource_name}/experiments/{experiment_id}")
    try:
        run = aiplatform.TensorboardRun.create(tensorboard_run_id=run_id,
                                               tensorboard_experiment_name=experiment.resource_name,
                                               display_name=run_name)
    except exceptions.Conflict:  # a retried step: write into its run again (a step's point is replaced)
        run = aiplatform.TensorboardRun(f"{experiment.resource_name}/runs/{run_id}")
    series_ids = {series.display_name: series.name
                  for series in aiplatform.TensorboardTimeSeries.list(tensorboard_run_name=run.resource_name)}
    for tag in scalars:
        if tag not in series_ids:
            series_ids[tag] = run.create_tensorboard_time_series(display_name=tag).name
    points = [(tag, step, wall, value) for tag, series in scalars.items() for step, wall, value in series]
    for start in range(0, len(points), WRITE_BATCH_POINTS):
        by_tag = defaultdict(list)
        for tag, step, wall, value in points[start:start + WRITE_BATCH_POINTS]:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromNanoseconds(int(wall * 1e9))
            by_tag[tag].append(tensorboard_data.TimeSeriesDataPoint(
                scalar=tensorboard_data.Scalar(value=value), wall_time=stamp, step=step))
        run.api_client.write_tensorboard_run_data(
            tensorboard_run=run.resource_name,
            time_series_data=[tensorboard_data.TimeSeriesData(
                tensorboard_time_series_id=series_ids[tag],
                value_type=tensorboard_time_series.TensorboardTimeSeries.ValueType.SCALAR,
                values=values) for tag, values in by_tag.items()])
    log(f"uploaded {len(points)} points of {len(scalars)} series to {run.resource_name}")
    return len(points)
