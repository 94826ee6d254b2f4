# Shared settings of the seed scenario scripts (sourced by setup.sh, run.sh, run-agent-only).
# Every value can be overridden from the environment.

CW_SCENARIO_DIR="${CW_SCENARIO_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
CW_SCENARIO_CACHE="${CW_SCENARIO_CACHE:-/var/cache/chainwatch}"
CW_SCENARIO_VENV="${CW_SCENARIO_VENV:-$CW_SCENARIO_CACHE/scenario-venv}"
CW_SCENARIO_PKI="${CW_SCENARIO_PKI:-$CW_SCENARIO_CACHE/scenario-pki}"
# Where the agent runs (its cwd, the conversation file, a copy of the CA): a neutral temp
# directory, because process events and argv show up in captures.
CW_SCENARIO_WORKDIR="${CW_SCENARIO_WORKDIR:-/tmp/cw-scenario}"

# Loopback ports of the stand-ins (all bound to 127.0.0.1 only).
CW_PORT_LLM="${CW_PORT_LLM:-18443}"
CW_PORT_JIRA="${CW_PORT_JIRA:-18444}"
CW_PORT_SLACK="${CW_PORT_SLACK:-18445}"
CW_PORT_PASTEBIN="${CW_PORT_PASTEBIN:-18446}"
CW_PORT_VECTOR="${CW_PORT_VECTOR:-18447}"
CW_PORT_PG="${CW_PORT_PG:-15433}"

export CW_SCENARIO_DIR CW_SCENARIO_CACHE CW_SCENARIO_VENV CW_SCENARIO_PKI CW_SCENARIO_WORKDIR
export CW_PORT_LLM CW_PORT_JIRA CW_PORT_SLACK CW_PORT_PASTEBIN CW_PORT_VECTOR CW_PORT_PG

# Host names of the stand-ins; the clients resolve them to 127.0.0.1 themselves (no /etc/hosts
# change), so TLS SNI, certificate names and Host headers carry these names.
CW_SCENARIO_HOSTS="llm.internal.test jira.example.test slack.example.test personal-pastebin.com vectors.internal.test db.internal.test"
