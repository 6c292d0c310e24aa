#!/bin/sh
# plugin-snippet.sh NAME IN OUT [SETTING...] - the conf.d snippet a
# plugin installs.
#
# Writes OUT: a header, "[plugin:NAME]" with "enable = true" and each
# SETTING ("key = value", where the installed system needs another value
# than the plugin's default to start), then what follows the
# "[plugin:NAME]" line of the plugin's NAME.conf (its keys, commented out
# at their defaults).  Installed as
# /etc/postilion/conf.d/NN-NAME.conf, it loads the plugin without an edit
# of [plugins] load (postilion.conf(5), "[plugin:NAME] enable").
# Called by plugins/meson.build at build time.
set -eu
name=$1
in=$2
out=$3
shift 3
if ! grep -qx "\[plugin:$name\]" "$in"; then
  echo "plugin-snippet.sh: $in has no [plugin:$name] line" >&2
  exit 1
fi
{
  cat <<HEADER
# The $name plugin's settings, with their defaults (postilion.conf(5),
# and the plugin's README.md for each key).
#
# "enable = true" loads the plugin without listing it in [plugins] load.
# Set "enable = false" to keep the plugin installed but not loaded.  When
# the plugin's package is removed but not purged, this file stays and the
# daemon starts without the plugin, with a warning in its log.
#
# Lines "#key = value" show a key's default: remove the '#' to change it.

[plugin:$name]
enable = true
HEADER
  if [ $# -gt 0 ]; then
    echo "# Set for this system (the plugin's own default would not start):"
    printf '%s\n' "$@"
  fi
  sed -n "/^\[plugin:$name\]\$/,\$p" "$in" | sed 1d
} > "$out"
