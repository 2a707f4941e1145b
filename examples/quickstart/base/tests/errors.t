#!/bin/sh
# Error handling tests for calc, as TAP (`--list` prints the subtest names).
CALC=${CALC:-./calc}

fails() { # name args...
	name=$1
	shift
	if $CALC "$@" >/dev/null 2>&1; then
		echo "not ok $n - $name"
		echo "# calc $* should have failed"
	else
		echo "ok $n - $name"
	fi
}

underflow() { fails underflow 1 +; }
leftover() { fails leftover 1 2; }
unknown_token() { fails unknown_token 1 2 x; }

ALL="underflow leftover unknown_token"
if [ "$1" = "--list" ]; then
	for t in $ALL; do echo "$t"; done
	exit 0
fi
[ $# -gt 0 ] || set -- $ALL
echo "TAP version 13"
echo "1..$#"
n=0
for t in "$@"; do
	n=$((n + 1))
	case " $ALL " in
	*" $t "*) "$t" ;;
	*) echo "not ok $n - $t # no such subtest" ;;
	esac
done
