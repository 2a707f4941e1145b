/* calc: evaluate an expression in reverse Polish notation given as arguments.
 * Example: ./calc 2 3 + prints 5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STACK_MAX 64

static long stack[STACK_MAX];
static int depth;

static void push(long value)
{
	if (depth == STACK_MAX) {
		fprintf(stderr, "calc: stack overflow\n");
		exit(2);
	}
	stack[depth++] = value;
}

static long pop(void)
{
	if (depth == 0) {
		fprintf(stderr, "calc: stack underflow\n");
		exit(2);
	}
	return stack[--depth];
}

static int is_number(const char *arg)
{
	if (*arg == '\0')
		return 0;
	for (; *arg; arg++)
		if (*arg < '0' || *arg > '9')
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		long b;

		if (is_number(arg)) {
			push(strtol(arg, NULL, 10));
		} else if (strcmp(arg, "+") == 0) {
			b = pop();
			push(pop() + b);
		} else if (strcmp(arg, "-") == 0) {
			b = pop();
			push(pop() - b);
		} else {
			fprintf(stderr, "calc: unknown token '%s'\n", arg);
			return 2;
		}
	}
	if (depth != 1) {
		fprintf(stderr, "calc: %d values left on the stack\n", depth);
		return 2;
	}
	printf("%ld\n", pop());
	return 0;
}
