"""The supervisor: keeps a warm `mlflow models serve` of the version a registry alias points at, and swaps versions
without failing a request.

Every `GATEWAY_POLL_S` seconds it asks the registry where `GATEWAY_MODEL_NAME@GATEWAY_MODEL_ALIAS` (default
`champion`) and `@GATEWAY_STANDBY_ALIAS` (default `challenger`) point. A version it has to serve is downloaded once
into `GATEWAY_STATE_DIR/models/` and served by its own `mlflow models serve` on a loopback port (the first one
`GATEWAY_SERVE_PORT`, a free one when taken), started in its own process group with its PID in
`GATEWAY_STATE_DIR/scoring-PORT.pid` and its output in `scoring-PORT.log`; the server must answer `/ping` and then
three real predictions (`info`, a title search, a recommendation) within `GATEWAY_SERVE_START_TIMEOUT_S`. Only
then does the supervisor call its router's `switch(url, name, version, build_run_id)`: from that moment new requests
go to the new server, labelled with that version, and `switch` hands back the route used until then, whose `drain`
returns once the requests already sent there finished (or `GATEWAY_DRAIN_TIMEOUT_S` passed); the old server is then
stopped. A version that fails to start or to warm up is stopped, shown in `failed_versions` and not tried again
until the alias moves; the old version keeps serving. The standby alias's version is kept started and warm with no
traffic, so moving the followed alias to it switches at once. A serving process that dies is started again from its
local copy (requests get 503 meanwhile), and at start the supervisor stops whatever scoring servers the PID files
of a previous run still name. It never imports the gateway: the gateway runs it in-process (`python -m gateway
serve`) and implements the router (`supervisor.router`); it owns the connections and the in-flight accounting, the
supervisor owns the processes.
"""
