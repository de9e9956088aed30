#!/usr/bin/env bash
# System packages driftline's demo and tests need: a JDK and Maven (the local Kafka broker),
# kcat (an independent Kafka client the tests use), promtool and amtool (the tests check the
# shipped Prometheus rules and Alertmanager config with them, and prometheus scrapes a worker),
# docker-compose (its `config` validates docker-compose.yml; no Docker daemon is needed or
# installed), chromium (the report is opened, checked and photographed in it, headless).
# Installs only what is missing.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
bare=()  # without recommended packages: docker-compose would pull in the Docker daemon
command -v docker-compose >/dev/null 2>&1 || bare+=(docker-compose)
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
if [ ${#need[@]} -gt 0 ] || [ ${#bare[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]} ${bare[*]}"
  $sudo_cmd apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ${#bare[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    "${bare[@]}" >/dev/null
fi
