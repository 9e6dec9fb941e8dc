#!/usr/bin/env bash
# Only the prompt-adherence jobs of scripts/eval_default_model.sh (free-form and template suites at P = 1/4/16,
# head steps 10/50 and int8, seeds 0-3), with the same workers, resume and reports:
#   bash scripts/eval_adherence_matrix.sh [MODEL]
set -euo pipefail
ONLY="${ONLY:-adh-}" exec bash "$(dirname "$0")/eval_default_model.sh" "$@"
