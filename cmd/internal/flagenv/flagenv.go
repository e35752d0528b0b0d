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

// Parse parses args into fs, after first setting every flag whose
// environment variable is set (looked up with getenv). Flags given on the
// command line win over the environment.
func Parse(fs *flag.FlagSet, prefix string, args []string, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		if v := getenv(Name(prefix, f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %w", v, Name(prefix, f.Name), e)
			}
		}
	})
	if err != nil {
		return err
	}
	return fs.Parse(args)
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
