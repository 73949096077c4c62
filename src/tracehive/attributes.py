"""Every span attribute key tracehive reads or writes, in one place.

Three conventions reach the server:
- ours (``tracehive.*``), written by :mod:`tracehive.sdk`: each namespace is one attribute holding
  a JSON object, so nested values and their types cross OTLP exactly;
- the HoneyHive SDK's (``honeyhive.*`` and ``honeyhive_<namespace>.<path>``), where each leaf of a
  namespace is its own flattened attribute;
- plain OpenTelemetry / OpenInference keys from any other instrumentation.

The other conventions' keys (OpenInference, OpenTelemetry GenAI, OpenLLMetry) are in the tables of
:mod:`tracehive.server.conventions`, which are their documentation.
"""

# --- ours -------------------------------------------------------------------------------------
SESSION_ID = "tracehive.session_id"
PROJECT = "tracehive.project"
SESSION_NAME = "tracehive.session_name"
SOURCE = "tracehive.source"
EVENT_TYPE = "tracehive.event_type"
EVENT_NAME = "tracehive.event_name"
ERROR = "tracehive.error"
# Marks a span that is not an event but a record about the session (its start, or an enrich_session).
RECORD = "tracehive.record"
RECORD_SESSION = "session"
# Namespace attributes are ``tracehive.<namespace>`` with a JSON object as a string value.
NAMESPACE_PREFIX = "tracehive."

# --- the HoneyHive SDK's ------------------------------------------------------------------------
HH_SESSION_ID = "honeyhive.session_id"
HH_PROJECT = "honeyhive.project"
HH_SOURCE = "honeyhive.source"
HH_SESSION_NAME = "honeyhive.session_name"
HH_EVENT_TYPE = "honeyhive_event_type"
HH_EVENT_NAME = "honeyhive_event_name"
HH_DURATION_MS = "honeyhive_duration_ms"
HH_ERROR = "honeyhive_error"
HH_ERROR_TYPE = "honeyhive_error_type"
# Namespace leaves are ``honeyhive_<namespace>.<dotted path>``.
HH_NAMESPACE_PREFIX = "honeyhive_"

# --- OpenTelemetry semantic conventions and OpenInference -----------------------------------------
OTEL_SESSION_ID = "session.id"
OTEL_USER_ID = "user.id"
OTEL_SERVICE_NAME = "service.name"
OTEL_EXCEPTION_EVENT = "exception"
OTEL_EXCEPTION_TYPE = "exception.type"
OTEL_EXCEPTION_MESSAGE = "exception.message"
OI_INPUT_VALUE = "input.value"
OI_OUTPUT_VALUE = "output.value"
OI_SPAN_KIND = "openinference.span.kind"
# A resource attribute: Phoenix's ``register(project_name=...)`` names the project with it.
OI_PROJECT_NAME = "openinference.project.name"
