package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rendezvous-rtc/rendezvous/cmd/internal/flagenv"
	"github.com/rendezvous-rtc/rendezvous/signal"
)

const tokenUsage = `rendezvous token: mint a join token for a server run with -auth-secret.

Usage:
  rendezvous token -room NAME [-ttl 1h] [-sub ID] [-cap N] [-auth-secret S]

Prints an HS256 JWT with claims room, exp and, when given, sub (the only peer
id it grants) and cap (the largest capacity it may create a room with).
Clients send it as "token" in join; the browser page reads ?token=.
`

// runToken implements the token subcommand.
func runToken(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("rendezvous token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	room := fs.String("room", "", "room `name` the token admits to, or * for any room (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	sub := fs.String("sub", "", "peer `id` the token grants (optional)")
	capacity := fs.Int("cap", 0, "largest capacity the token may create a room with (optional)")
	secret := fs.String("auth-secret", "", "the server's -auth-secret")
	fs.Usage = flagenv.Usage(fs, envPrefix, tokenUsage)
	if err := flagenv.Parse(fs, envPrefix, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "rendezvous token: %v\n", err)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "rendezvous token: unexpected argument %q\n", fs.Arg(0))
		return 2
	case *room == "":
		fmt.Fprintln(stderr, "rendezvous token: -room is required (a room name, or * for any)")
		return 2
	case *secret == "":
		fmt.Fprintln(stderr, "rendezvous token: -auth-secret (or RENDEZVOUS_AUTH_SECRET) is required")
		return 2
	case *capacity < 0:
		fmt.Fprintln(stderr, "rendezvous token: -cap must not be negative")
		return 2
	}
	tok, err := signal.MintToken([]byte(*secret), *room, *sub, *capacity, *ttl)
	if err != nil {
		fmt.Fprintf(stderr, "rendezvous token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
