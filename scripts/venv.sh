# Sourced by the install scripts: `make_venv DIR` creates the venv DIR (with $PYTHON, else python3) unless it is
# there, and brings its pip up to date.
make_venv() {
    local dir=$1 py=${PYTHON:-python3}
    if [ ! -x "$dir/bin/python" ]; then
        echo "[vidcap] creating $dir with $($py --version)"
        "$py" -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install -q --upgrade pip
}
