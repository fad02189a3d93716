#!/bin/sh
# version.sh prints the package version: `git describe --tags --always --dirty`
# mapped to a version both dpkg and rpm order correctly.
#
#   v1.2.3                 -> 1.2.3
#   v1.2.3-rc1             -> 1.2.3~rc1            (pre-release sorts before 1.2.3)
#   v1.2.3-4-gabc1234      -> 1.2.3+git4.abc1234   (after the tag)
#   abc1234 (no tag)       -> 0.0.0~git57.abc1234  (57 = commit count, so upgrades order)
#   ...-dirty              -> ... + ".dirty"
#   no git at all          -> 0.0.0~unknown
set -eu
cd "$(dirname "$0")/.."

desc=$(git describe --tags --always --dirty 2>/dev/null) || { echo 0.0.0~unknown; exit 0; }

dirty=""
case $desc in
*-dirty) dirty=".dirty"; desc=${desc%-dirty} ;;
esac

if ! git describe --tags >/dev/null 2>&1; then
	count=$(git rev-list --count HEAD 2>/dev/null || echo 0)
	echo "0.0.0~git${count}.${desc}${dirty}"
	exit 0
fi

desc=${desc#v}
# Commits after the tag: <tag>-<n>-g<hash>.
after=""
if printf '%s\n' "$desc" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
	hash=${desc##*-g}
	rest=${desc%-g*}
	n=${rest##*-}
	desc=${rest%-*}
	after="+git${n}.${hash}"
fi
# A pre-release tag (1.2.3-rc1) sorts before the release: 1.2.3~rc1.
tag=$(printf '%s' "$desc" | tr -- '-' '~')
case $tag in
[0-9]*) ;;
*) tag="0.0.0~${tag}" ;;
esac
# Keep only characters both dpkg and rpm accept in a version.
printf '%s%s%s\n' "$tag" "$after" "$dirty" | tr -c 'A-Za-z0-9.+~\n' '.'
