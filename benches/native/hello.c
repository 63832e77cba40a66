/* The boot benchmark's floor: a static binary that writes one line and exits,
 * like the `hello` guest (docs/baselines.md measured the same thing). */
#include <unistd.h>

int main(void)
{
    static const char msg[] = "Hello, world\n";
    return write(1, msg, sizeof msg - 1) == sizeof msg - 1 ? 0 : 1;
}
