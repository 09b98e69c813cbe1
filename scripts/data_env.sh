# Sourced by scripts/main.sh and scripts/train_pretrained.sh, from the checkout's root: where the
# QM9 data is. $MOLMTL_DATA if set, else ../shared/data/qm9 beside the checkout, else the qm9pack
# package, which scripts/setup.sh then installs (the `qm9` extra).
if [ -z "${MOLMTL_DATA:-}" ] && [ -d ../shared/data/qm9 ]; then
    MOLMTL_DATA="$(cd ../shared/data/qm9 && pwd)"
    export MOLMTL_DATA
fi
if [ -z "${MOLMTL_DATA:-}" ]; then
    export MOLMTL_EXTRAS=qm9
fi
