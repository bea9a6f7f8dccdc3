"""The Cloud Storage JSON API (buckets, bucket IAM, object listing and media downloads).

google-cloud-storage talks to it when STORAGE_EMULATOR_HOST names it.
"""

import base64
import re

import google_crc32c

from .http_server import FakeHttpServer, Response, error


class FakeGcs(FakeHttpServer):
    def __init__(self, project_number: str):
        super().__init__("gcs")
        self.project_number = project_number
        self.buckets: dict[str, dict] = {}
        self.objects: dict[str, dict[str, bytes]] = {}
        self.iam: dict[str, dict] = {}
        self.route("GET", r"/storage/v1/b/([^/]+)", self._get_bucket)
        self.route("POST", r"/storage/v1/b", self._insert_bucket)
        self.route("GET", r"/storage/v1/b/([^/]+)/iam", self._get_iam)
        self.route("PUT", r"/storage/v1/b/([^/]+)/iam", self._set_iam)
        self.route("GET", r"/storage/v1/b/([^/]+)/o", self._list_objects)
        self.route("GET", r"/storage/v1/b/([^/]+)/o/(.+)", self._get_object)
        self.route("GET", r"/download/storage/v1/b/([^/]+)/o/(.+)", self._get_object)

    def add_bucket(self, name: str, location: str = "US-CENTRAL1") -> None:
        self.buckets[name] = {"kind": "storage#bucket", "id": name, "name": name,
                              "projectNumber": self.project_number, "location": location,
                              "storageClass": "STANDARD", "metageneration": "1"}
        self.objects.setdefault(name, {})

    def add_object(self, bucket: str, name: str, data: bytes) -> None:
        if bucket not in self.buckets:
            self.add_bucket(bucket)
        self.objects[bucket][name] = data

    def _object_resource(self, bucket: str, name: str) -> dict:
        data = self.objects[bucket][name]
        return {"kind": "storage#object", "bucket": bucket, "name": name, "size": str(len(data)),
                "generation": "1", "metageneration": "1", "contentType": "application/octet-stream",
                "id": f"{bucket}/{name}/1"}

    def _get_bucket(self, request, match):
        bucket = self.buckets.get(match.group(1))
        if bucket is None:
            return error(404, f"The specified bucket does not exist: {match.group(1)}", "NOT_FOUND")
        return Response(200, bucket)

    def _insert_bucket(self, request, match):
        body = request.json()
        self.add_bucket(body["name"], body.get("location", "US"))
        return Response(200, self.buckets[body["name"]])

    def _get_iam(self, request, match):
        policy = self.iam.get(match.group(1), {"kind": "storage#policy", "bindings": [], "etag": "CAE="})
        return Response(200, policy)

    def _set_iam(self, request, match):
        self.iam[match.group(1)] = {**request.json(), "etag": "CAI="}
        return Response(200, self.iam[match.group(1)])

    def _list_objects(self, request, match):
        bucket = match.group(1)
        if bucket not in self.buckets:
            return error(404, f"The specified bucket does not exist: {bucket}", "NOT_FOUND")
        prefix = request.query.get("prefix", [""])[0]
        names = sorted(n for n in self.objects[bucket] if n.startswith(prefix))
        return Response(200, {"kind": "storage#objects",
                              "items": [self._object_resource(bucket, n) for n in names]})

    def _get_object(self, request, match):
        bucket, name = match.group(1), match.group(2)
        if name not in self.objects.get(bucket, {}):
            return error(404, f"No such object: {bucket}/{name}", "NOT_FOUND")
        if request.query.get("alt") != ["media"]:
            return Response(200, self._object_resource(bucket, name))
        data = self.objects[bucket][name]
        headers = {"x-goog-generation": "1"}
        byte_range = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("range", ""))
        if byte_range:
            start = int(byte_range.group(1))
            end = int(byte_range.group(2)) if byte_range.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data):
                return Response(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return Response(206, data[start:end + 1], headers)
        checksum = base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
        return Response(200, data, {**headers, "x-goog-hash": f"crc32c={checksum}"})
