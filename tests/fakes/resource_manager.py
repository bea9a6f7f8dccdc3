"""Cloud Resource Manager v3 `Projects.GetProject` over gRPC with TLS, reached through an HTTP
CONNECT proxy on loopback.

The Vertex SDK looks the project number up (to check that the pipeline-root bucket belongs to the
project) with a gRPC client for `cloudresourcemanager.googleapis.com:443`; it offers no endpoint
setting. gRPC's own environment variables reach this fake: `grpc_proxy` names the proxy and
`GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` the certificate authority that signed the fake's certificate.
"""

import datetime
import socket
import threading
from concurrent import futures
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.cloud.resourcemanager_v3.types import projects

SERVICE_HOST = "cloudresourcemanager.googleapis.com"
GET_PROJECT = "/google.cloud.resourcemanager.v3.Projects/GetProject"


def _certificate(subject: str, key, issuer_name, issuer_key, is_ca: bool, dns_name: str | None = None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if dns_name:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class FakeResourceManager:
    """`start(directory)` writes the CA file and serves; `env()` gives the variables a client needs."""

    def __init__(self, project_id: str, project_number: str):
        self.project_id = project_id
        self.project_number = project_number
        self.requests: list[str] = []  # the `name` of every GetProject request
        self.connect_targets: list[str] = []
        self.ca_file: Path | None = None
        self._server = None
        self._grpc_port = 0
        self._proxy: socket.socket | None = None
        self._stopping = threading.Event()

    def start(self, directory: Path) -> "FakeResourceManager":
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _certificate("fake test CA", ca_key, None, ca_key, is_ca=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(SERVICE_HOST, key, ca_cert.subject, ca_key, is_ca=False, dns_name=SERVICE_HOST)
        self.ca_file = Path(directory) / "fake-ca.pem"
        self.ca_file.write_bytes(_pem(ca_cert))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())

        handler = grpc.method_handlers_generic_handler(
            "google.cloud.resourcemanager.v3.Projects",
            {"GetProject": grpc.unary_unary_rpc_method_handler(
                self._get_project,
                request_deserializer=projects.GetProjectRequest.deserialize,
                response_serializer=projects.Project.serialize)},
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self._server.add_generic_rpc_handlers((handler,))
        credentials = grpc.ssl_server_credentials([(key_pem, _pem(cert))])
        self._grpc_port = self._server.add_secure_port("127.0.0.1:0", credentials)
        self._server.start()

        self._proxy = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, name="connect-proxy", daemon=True).start()
        return self

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self._proxy.getsockname()[1]}"

    def env(self) -> dict[str, str]:
        return {"grpc_proxy": self.proxy_url, "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(self.ca_file)}

    def _get_project(self, request, context):
        self.requests.append(request.name)
        if request.name not in (f"projects/{self.project_id}", f"projects/{self.project_number}"):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"no access to {request.name}")
        return projects.Project(name=f"projects/{self.project_number}", project_id=self.project_id)

    # The CONNECT proxy: every tunnel leads to the gRPC server, whatever host it names.
    def _accept(self):
        while not self._stopping.is_set():
            try:
                client, _ = self._proxy.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket):
        header = b""
        while b"\r\n\r\n" not in header:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            header += chunk
        request_line = header.split(b"\r\n", 1)[0].decode()
        method, target, _ = request_line.split(" ", 2)
        self.connect_targets.append(target)
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self._grpc_port))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = header.split(b"\r\n\r\n", 1)[1]
        if rest:
            upstream.sendall(rest)

        def pipe(source, sink):
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for s in (source, sink):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def stop(self):
        self._stopping.set()
        if self._proxy is not None:
            self._proxy.close()
        if self._server is not None:
            self._server.stop(grace=None)
