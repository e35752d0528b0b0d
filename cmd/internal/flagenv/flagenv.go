// Package flagenv lets every flag of a FlagSet be set by an environment
// variable, and prints usage that names those variables.
package flagenv

import (
	"flag"
	"fmt"
	"strings"
)

// Name returns the environment variable for flag name under prefix:
// Name("RENDEZVOUS", "max-conns") is RENDEZVOUS_MAX_CONNS.
func Name(prefix, flagName string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then sets every flag that args did not set
// from its environment variable (looked up with getenv; an empty value
// counts as unset). A flag given on the command line wins: its variable is
// not read at all, so a repeatable flag is not added to the variable's
// values, and a bad value in the variable does not matter. A bad value in
// a variable that is read is an error naming the variable.
func Parse(fs *flag.FlagSet, prefix string, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	onCommandLine := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || onCommandLine[f.Name] {
			return
		}
		if v := getenv(Name(prefix, f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %w", v, Name(prefix, f.Name), e)
			}
		}
	})
	return err
}

// Usage returns a usage function for fs that prints header, then each flag
// with its default and its environment variable.
func Usage(fs *flag.FlagSet, prefix, header string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprint(w, header)
		fmt.Fprintf(w, "\nFlags (each can also be set by the environment variable shown):\n")
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  -%s", f.Name)
			if name != "" {
				fmt.Fprintf(w, " %s", name)
			}
			fmt.Fprintf(w, "\n    \t%s", strings.ReplaceAll(usage, "\n", "\n    \t"))
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "\n    \t$%s\n", Name(prefix, f.Name))
		})
	}
}
