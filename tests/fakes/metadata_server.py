"""The GCE metadata server, as far as google-auth's Application Default Credentials use it.

google-auth finds it through GCE_METADATA_HOST (paths under /computeMetadata/v1/) and
GCE_METADATA_IP (the detection ping); every answer carries `Metadata-Flavor: Google`.
"""

from .http_server import FakeHttpServer, Response

FLAVOR = {"Metadata-Flavor": "Google"}
ACCESS_TOKEN = "fake-access-token-from-metadata-server"
SERVICE_ACCOUNT = "runner@fake-project.iam.gserviceaccount.com"


def metadata_server(project_id: str) -> FakeHttpServer:
    server = FakeHttpServer("metadata")

    def require_flavor(request) -> Response | None:
        if request.headers.get("metadata-flavor") != "Google":
            return Response(403, "Missing Metadata-Flavor header", FLAVOR)
        return None

    def root(request, match):
        return require_flavor(request) or Response(200, "computeMetadata/", FLAVOR)

    def project(request, match):
        return require_flavor(request) or Response(200, project_id, FLAVOR)

    def account_info(request, match):
        info = {"email": SERVICE_ACCOUNT, "aliases": ["default"],
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}
        return require_flavor(request) or Response(200, info, FLAVOR)

    def token(request, match):
        body = {"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}
        return require_flavor(request) or Response(200, body, FLAVOR)

    server.route("GET", r"/", root)
    server.route("GET", r"/computeMetadata/v1/project/project-id", project)
    server.route("GET", r"/computeMetadata/v1/instance/service-accounts/default/?", account_info)
    server.route("GET", r"/computeMetadata/v1/instance/service-accounts/[^/]+/token", token)
    server.route("GET", r"/computeMetadata/v1/universe/universe-domain",
                 lambda request, match: Response(404, "not found", FLAVOR))
    return server
