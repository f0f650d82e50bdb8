"""The API's URLs, in one place: blueprints, the sample's curl lines and tools import them."""

ROOT = "/ec-reporting-svc"
REST = ROOT + "/rest/v2.0"
REPORTS = REST + "/reports"
DOWNLOAD = REPORTS + "/download"
REPORT_METADATA = REST + "/reportmetadata"
DOWNLOAD_LIST = REPORT_METADATA + "/downloadList"
