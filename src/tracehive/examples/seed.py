"""The example from the page that defined tracehive, with one change: ``honeyhive`` -> ``tracehive``.

Both snippets of the page in one program; ``response`` is defined and ``process_request`` called so
that the span exists. Run it with ``HH_API_KEY``, ``HH_PROJECT`` and ``HH_API_URL`` set.
"""

import os

from tracehive import HoneyHiveTracer, trace

tracer = HoneyHiveTracer.init(
    api_key=os.getenv("HH_API_KEY"),
    project=os.getenv("HH_PROJECT"),
)

# Add user context to the entire trace
tracer.enrich_session(user_properties={
    "user_id": "user_12345",
    "email": "user@example.com",
    "plan": "premium",
    "is_beta": True,
})  # fmt: skip


@trace
def process_request(query: str, user_id: str):
    response = f"results for {query!r}"

    # Add user context to this specific span
    tracer.enrich_span(user_properties={
        "user_id": user_id,
        "last_action": "search",
    })  # fmt: skip

    return response


if __name__ == "__main__":
    print(process_request("best hiking boots", "user_12345"))
    print("session:", tracer.session_id)
