#!/bin/sh
# Arithmetic tests for calc, as TAP. `--list` prints the subtest names; with names as
# arguments only those run (the reconciler batches subtests this way).
CALC=${CALC:-./calc}

check() { # name expected args...
	name=$1 expected=$2
	shift 2
	got=$($CALC "$@" 2>&1)
	if [ "$got" = "$expected" ]; then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name"
		echo "# expected '$expected', got '$got'"
	fi
}

add() { check add 5 2 3 +; }
subtract() { check subtract 4 7 3 -; }
chain() { check chain 10 1 2 + 3 + 4 +; }

ALL="add subtract chain"
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
