#!/usr/bin/env bash
# What tests/test_cluster.py needs for its single-node SLURM cluster: Debian's slurm-wlm and munge.
# Idempotent: does nothing when they are installed. Without root or apt-get it says so and leaves the test to skip.
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-slurm: needs root and apt-get to install slurm-wlm and munge; the SLURM test will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
