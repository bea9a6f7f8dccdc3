"""Reading the trainers' TensorBoard scalars and uploading them to a Vertex AI TensorBoard (checked
against the Vertex REST fake)."""

import json
import math
import re
import subprocess
import sys
import textwrap
from collections import defaultdict
from dataclasses import dataclass

import pytest
from torch.utils.tensorboard import SummaryWriter

from components.upload_model.tensorboard import WRITE_BATCH_POINTS, read_scalars, upload_tensorboard_logs
from fakes.cloud import LOCATION, PROJECT_ID, PROJECT_NUMBER, google_cloud_fakes
from fakes.vertex import FakeVertex


def test_scalars_of_every_event_file_are_read_in_step_order(tmp_path):
    for run, offset in (("reward", 0.0), ("policy", 10.0)):
        writer = SummaryWriter(tmp_path / run)
        for step in (2, 0, 1):
            writer.add_scalar(f"{run}/loss", offset + step, step)
        writer.close()
    scalars = read_scalars(str(tmp_path))
    assert sorted(scalars) == ["policy/loss", "reward/loss"]
    assert [(step, value) for step, _, value in scalars["policy/loss"]] == [(0, 10.0), (1, 11.0), (2, 12.0)]


def test_without_a_tensorboard_or_off_vertex_nothing_is_uploaded(tmp_path):
    lines = []
    assert upload_tensorboard_logs(str(tmp_path), "", "p", "us-central1", "run-1", log=lines.append) == 0
    assert upload_tensorboard_logs(str(tmp_path), "123", "{{$.pipeline_google_cloud_project_id}}",
                                   "us-central1", "run-1", log=lines.append) == 0
    assert lines[0].startswith("no tensorboard_resource_id") and lines[1].startswith("not on Vertex AI")


# The upload on Vertex AI, run in a fresh process as the logs step runs it (both training steps' logs, one
# after the other, into the pipeline job's experiment) against the Vertex REST fake, credentials from the
# metadata-server fake. Wall times are set, values are exact in float32: every point is known beforehand.
EXPERIMENT = "rlhf-pipeline-20240501123456"  # the pipeline job's name, already a valid resource id
WALL_TIME = 1_714_560_000.0
POLICY_STEPS = 1200  # two tags of more than a write request's points each
TRAINING_LOGS = {  # run name -> tag -> [(step, value, wall time)]
    "reward_model": {"rank_loss": [(step, 2 - step / 8, WALL_TIME + step) for step in range(10)]},
    "policy": {"reward": [(step, step / 4, WALL_TIME + 100 + step / 2) for step in range(POLICY_STEPS)],
               "kl_loss": [(step, step / 1024, WALL_TIME + 100 + step / 2) for step in range(POLICY_STEPS)]},
}
RUN_IDS = {"reward_model": "reward-model", "policy": "policy"}


@dataclass
class Upload:
    fakes: object
    tensorboard: str  # the TensorBoard instance's resource name
    counts: dict[str, int]  # what each call returned, by run name

    def run_name(self, run: str) -> str:
        return f"{self.tensorboard}/experiments/{EXPERIMENT}/runs/{RUN_IDS[run]}"

    def requests(self, method: str, path_suffix: str, under: str = "") -> list:
        return self.fakes.vertex.find(method, re.escape(f"/v1/{under or self.tensorboard}{path_suffix}"))

    def written_points(self, run: str) -> list[list[tuple[str, int, float, float]]]:
        """Each write request's points: [(time series id, step, value, wall time in seconds)]."""
        from google.protobuf.timestamp_pb2 import Timestamp

        def seconds(text: str) -> float:
            stamp = Timestamp()
            stamp.FromJsonString(text)
            return stamp.ToNanoseconds() / 1e9

        writes = self.requests("POST", ":write", under=self.run_name(run))
        return [[(data["tensorboardTimeSeriesId"], int(point.get("step", 0)),  # int64 travels as a string,
                  point["scalar"].get("value", 0.0), seconds(point["wallTime"]))  # zeros are left out
                 for data in write.json()["timeSeriesData"] for point in data["values"]] for write in writes]


@pytest.fixture(scope="module")
def upload(tmp_path_factory) -> Upload:
    tmp = tmp_path_factory.mktemp("tensorboard-upload")
    log_dirs = {}
    for run, tags in TRAINING_LOGS.items():
        log_dirs[run] = str(tmp / run)
        writer = SummaryWriter(log_dirs[run])
        for tag, points in tags.items():
            for step, value, wall_time in points:
                writer.add_scalar(tag, value, step, walltime=wall_time)
        writer.close()
    with google_cloud_fakes(tmp / "home") as fakes:
        tensorboard = fakes.vertex.add_tensorboard(LOCATION)
        code = textwrap.dedent(f"""
            import json
            from components.upload_model.tensorboard import upload_tensorboard_logs
            counts = {{run: upload_tensorboard_logs(log_dir, {tensorboard.rsplit("/", 1)[1]!r}, {PROJECT_ID!r},
                                                    {LOCATION!r}, experiment_name={EXPERIMENT!r}, run_name=run,
                                                    api_endpoint={fakes.vertex.url!r})
                      for run, log_dir in {log_dirs!r}.items()}}
            print(json.dumps(counts))
        """)
        result = subprocess.run([sys.executable, "-c", code], env=fakes.env(), capture_output=True, text=True,
                                timeout=120)
    assert result.returncode == 0, result.stderr
    return Upload(fakes, tensorboard, json.loads(result.stdout.strip().splitlines()[-1]))


def test_both_runs_go_into_the_pipeline_jobs_experiment_which_the_first_creates(upload):
    creates = upload.requests("POST", "/experiments")
    assert len(creates) == 2  # the second is answered 409 ALREADY_EXISTS and that upload opens the experiment
    assert all(c.query["tensorboardExperimentId"] == [EXPERIMENT] and c.json() == {"displayName": EXPERIMENT}
               for c in creates)
    experiment = f"{upload.tensorboard}/experiments/{EXPERIMENT}"
    assert list(upload.fakes.vertex.tensorboard_experiments) == [experiment]
    runs = upload.requests("POST", "/runs", under=experiment)
    assert [(r.query["tensorboardRunId"], r.json()) for r in runs] == [
        (["reward-model"], {"displayName": "reward_model"}), (["policy"], {"displayName": "policy"})]
    assert list(upload.fakes.vertex.tensorboard_runs) == [upload.run_name("reward_model"), upload.run_name("policy")]


def test_each_tag_is_one_scalar_time_series_named_after_it(upload):
    from google.cloud.aiplatform_v1.types.tensorboard_time_series import TensorboardTimeSeries

    for run, tags in TRAINING_LOGS.items():
        creates = [r.json() for r in upload.requests("POST", "/timeSeries", under=upload.run_name(run))]
        assert sorted(c["displayName"] for c in creates) == sorted(tags)
        assert all(TensorboardTimeSeries.ValueType(c["valueType"]).name == "SCALAR"
                   and c["pluginName"] == "scalars" for c in creates)


def test_every_point_is_written_once_with_its_step_value_and_wall_time(upload):
    from google.cloud.aiplatform_v1.types.tensorboard_time_series import TensorboardTimeSeries

    for run, tags in TRAINING_LOGS.items():
        created = {name.rsplit("/", 1)[1]: series["displayName"]  # the ids the service gave the time series
                   for name, series in upload.fakes.vertex.tensorboard_time_series.items()
                   if name.startswith(upload.run_name(run) + "/")}
        written = defaultdict(list)
        for series_id, step, value, wall_time in sum(upload.written_points(run), []):
            assert series_id in created, f"{run}: a write names time series {series_id}, not one the run has"
            written[created[series_id]].append((step, value, wall_time))
        assert sorted(written) == sorted(tags)
        for tag, points in tags.items():
            assert [(step, value) for step, value, _ in sorted(written[tag])] == [(s, v) for s, v, _ in points], tag
            assert [wall for _, _, wall in sorted(written[tag])] == pytest.approx([w for _, _, w in points],
                                                                                  abs=1e-6), tag
        writes = upload.requests("POST", ":write", under=upload.run_name(run))
        assert all(TensorboardTimeSeries.ValueType(data["valueType"]).name == "SCALAR"
                   for write in writes for data in write.json()["timeSeriesData"])
        # and the run holds them: the service keeps one point per step of a time series
        assert {tag: [(step, value) for step, value, _ in held]
                for tag, held in upload.fakes.vertex.tensorboard_scalars(upload.run_name(run)).items()} == {
            tag: [(step, value) for step, value, _ in points] for tag, points in tags.items()}


def test_more_points_than_a_write_request_takes_are_written_in_several(upload):
    policy_points = sum(len(points) for points in TRAINING_LOGS["policy"].values())
    assert POLICY_STEPS > WRITE_BATCH_POINTS  # one tag alone needs two requests
    sizes = [len(points) for points in upload.written_points("policy")]
    assert len(sizes) == math.ceil(policy_points / WRITE_BATCH_POINTS) and sum(sizes) == policy_points
    assert max(sizes) == WRITE_BATCH_POINTS
    assert [len(points) for points in upload.written_points("reward_model")] == [10]


def test_the_upload_returns_the_points_written_and_every_request_has_a_route(upload):
    assert upload.counts == {run: sum(len(points) for points in tags.values())
                             for run, tags in TRAINING_LOGS.items()} == {"reward_model": 10, "policy": 2400}
    assert upload.fakes.vertex.unmatched() == []
    assert upload.fakes.gcs.requests == []


def test_the_fake_answers_as_the_service_does_where_the_upload_relies_on_it():
    """A second create of an id is 409 ALREADY_EXISTS, which the SDK's REST transport raises as `Conflict` (the
    exception class follows the HTTP status, never the body's status: not its `AlreadyExists` subclass); a write
    names time series of the run and replaces the point of a step written before."""
    import urllib.error
    import urllib.request

    from google.api_core import exceptions

    def call(url: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data)) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    with FakeVertex(PROJECT_NUMBER) as vertex:
        tensorboard = f"{vertex.url}/v1/{vertex.add_tensorboard(LOCATION)}"
        assert call(f"{tensorboard}/experiments?tensorboardExperimentId=e", {"displayName": "e"})[0] == 200
        status, body = call(f"{tensorboard}/experiments?tensorboardExperimentId=e", {"displayName": "e"})
        assert (status, body["error"]["status"]) == (409, "ALREADY_EXISTS")
        run_name = call(f"{tensorboard}/experiments/e/runs?tensorboardRunId=r", {"displayName": "r"})[1]["name"]
        run = f"{vertex.url}/v1/{run_name}"
        series = call(f"{run}/timeSeries", {"displayName": "loss", "valueType": 1})[1]["name"].rsplit("/", 1)[1]
        assert call(f"{run}/timeSeries", {"displayName": "loss", "valueType": 1})[0] == 409
        for value in (1.5, 2.5):
            point = {"step": "3", "wallTime": "2024-05-01T10:40:00Z", "scalar": {"value": value}}
            assert call(f"{run}:write", {"timeSeriesData": [
                {"tensorboardTimeSeriesId": series, "valueType": 1, "values": [point]}]}) == (200, {})
        assert call(f"{run}:write", {"timeSeriesData": [
            {"tensorboardTimeSeriesId": "999", "valueType": 1, "values": [point]}]})[0] == 404
        assert vertex.tensorboard_scalars(run_name) == {"loss": [(3, 2.5, "2024-05-01T10:40:00Z")]}
    assert type(exceptions.from_http_status(409, "exists")) is exceptions.Conflict


def test_a_retried_upload_writes_into_the_same_run_and_series_without_duplicates(tmp_path):
    """A logs step that runs again in the same job (a retry) finds its run and series already there."""
    writer = SummaryWriter(tmp_path / "logs")
    for step in range(5):
        writer.add_scalar("rank_loss", 2.0 - step / 4, step, walltime=WALL_TIME + step)  # exact in float32
    writer.close()
    with google_cloud_fakes(tmp_path / "home") as fakes:
        tensorboard = fakes.vertex.add_tensorboard(LOCATION)
        code = textwrap.dedent(f"""
            import json
            from components.upload_model.tensorboard import upload_tensorboard_logs
            print(json.dumps([upload_tensorboard_logs({str(tmp_path / "logs")!r}, {tensorboard!r}, {PROJECT_ID!r},
                                                      {LOCATION!r}, experiment_name={EXPERIMENT!r},
                                                      run_name="reward_model", api_endpoint={fakes.vertex.url!r})
                              for attempt in range(2)]))
        """)
        result = subprocess.run([sys.executable, "-c", code], env=fakes.env(), capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        run_name = f"{tensorboard}/experiments/{EXPERIMENT}/runs/reward-model"
        series_creates = fakes.vertex.find("POST", re.escape(f"/v1/{run_name}/timeSeries"))
        stored = fakes.vertex.tensorboard_scalars(run_name)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [5, 5]
    assert len(series_creates) == 1
    assert [(step, value) for step, value, _ in stored["rank_loss"]] == [(s, 2.0 - s / 4) for s in range(5)]
