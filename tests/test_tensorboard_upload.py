"""Reading the trainers' TensorBoard scalars for upload to a Vertex AI TensorBoard."""

from torch.utils.tensorboard import SummaryWriter

from components.upload_model.tensorboard import read_scalars, upload_tensorboard_logs


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
