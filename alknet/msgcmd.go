package main

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/msg"
)

// nodeFlag names the node holding this identity's inbox.
var nodeFlag = &cli.StringFlag{
	Name:  "node",
	Usage: "the node holding this identity's inbox, NODEID@HOST:PORT (default: this data dir's own node at node.listen)",
}

var msgCommand = &cli.Command{
	Name:  "msg",
	Usage: "send and read end-to-end encrypted messages",
	Description: "Messages are sealed to the recipient's messaging key (derived from its vault) and\n" +
		"signed with the sender's node key; nodes keep them in an inbox until the recipient\n" +
		"acknowledges them. See docs/msg.md.",
	Subcommands: []*cli.Command{
		{
			Name:      "send",
			Usage:     "seal a message and deliver it to the recipient or its home node",
			ArgsUsage: "NODEID|NODEID@HOST:PORT ['TEXT']",
			Description: "Delivers to NODEID@HOST:PORT (the recipient's own node, or a node hosting it),\n" +
				"or for a bare NODEID to the address msg.homes gives. The body is TEXT, or the\n" +
				"contents of --file.",
			Flags: withCommon(
				&cli.StringFlag{Name: "file", Usage: "send this file's contents instead of TEXT"},
				&cli.StringFlag{Name: "content-type", Usage: "content type of --file (default application/octet-stream)"},
				networkFlag,
			),
			Action: msgSend,
		},
		{
			Name:   "read",
			Usage:  "print the messages of this identity's inbox as JSON lines",
			Flags:  withCommon(&cli.BoolFlag{Name: "ack", Usage: "remove the printed messages from the inbox"}, nodeFlag, networkFlag),
			Action: msgRead,
		},
		{
			Name:   "watch",
			Usage:  "print this identity's messages as JSON lines as they arrive, until Ctrl-C",
			Flags:  withCommon(&cli.BoolFlag{Name: "ack", Usage: "remove each printed message from the inbox"}, nodeFlag, networkFlag),
			Action: msgWatch,
		},
		{
			Name:  "key",
			Usage: "print this node's signed messaging key record (for a home node's msg.hosted)",
			Flags: withCommon(),
			Action: func(c *cli.Context) error {
				mc, err := msgClientFor(c)
				if err != nil {
					return err
				}
				rec, err := msg.SignKeyRecord(mc.nodeKey, mc.key.PublicKey())
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, rec.String())
				return nil
			},
		},
	},
}

// msgClient is what the msg commands share: the keys, the config and a
// dialer presenting the node key.
type msgClient struct {
	nodeKey ed25519.PrivateKey
	key     *ecdh.PrivateKey
	id      core.NodeID
	cfg     *fileConfig
	dialer  *core.Dialer
}

// msgClientFor opens the data dir's vault (once) and config.
func msgClientFor(c *cli.Context) (*msgClient, error) {
	dir, err := dataDir(c)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(configPath(c, dir))
	if err != nil {
		return nil, err
	}
	nk, k, err := nodeKeys(c, dir)
	if err != nil {
		return nil, err
	}
	d, err := dialerWith(c, dir, nk)
	if err != nil {
		return nil, err
	}
	return &msgClient{nodeKey: nk, key: k, id: nodeID(nk), cfg: cfg, dialer: d}, nil
}

// session dials addr for alknet/msg within dialTimeout.
func (mc *msgClient) session(ctx context.Context, addr string) (*msg.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	return msg.Dial(ctx, mc.dialer, addr)
}

// inboxAddr is --node, else this node at its configured listen address
// (an unspecified host becomes loopback).
func (mc *msgClient) inboxAddr(c *cli.Context) (string, error) {
	if a := c.String("node"); a != "" {
		return a, nil
	}
	host, port, err := net.SplitHostPort(mc.cfg.Node.ListenAddr())
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return mc.id.String() + "@" + net.JoinHostPort(host, port), nil
}

func msgSend(c *cli.Context) error {
	if c.NArg() < 1 || c.NArg() > 2 || (c.NArg() == 2) == c.IsSet("file") {
		return cli.Exit("alknet msg send: want RECIPIENT and either TEXT or --file", 2)
	}
	mc, err := msgClientFor(c)
	if err != nil {
		return err
	}
	m := msg.Message{ContentType: msg.TextType, Body: []byte(c.Args().Get(1))}
	if f := c.String("file"); f != "" {
		if m.Body, err = os.ReadFile(f); err != nil {
			return err
		}
		m.ContentType = c.String("content-type")
		if m.ContentType == "" {
			m.ContentType = "application/octet-stream"
		}
	}
	to, addr, err := msg.ResolveRecipient(c.Args().Get(0), mc.cfg.Msg.resolveHome)
	if err != nil {
		return err
	}
	m.To = to
	return mc.withSession(c, addr, func(ctx context.Context, s *msg.Session) error {
		sent, err := s.Send(ctx, mc.nodeKey, m)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "sent %s to %s\n", sent.ID, to)
		return nil
	})
}

// opener opens this identity's envelopes with the [msg] limits.
func (mc *msgClient) opener() *msg.Opener {
	return &msg.Opener{Key: mc.key, NodeID: mc.id, MaxBodyBytes: mc.cfg.Msg.MaxBodyBytes, Skew: mc.cfg.Msg.Skew.Duration}
}

// withInbox runs f with a session to the node holding this identity's
// inbox, until Ctrl-C.
func withInbox(c *cli.Context, f func(context.Context, *msgClient, *msg.Session) error) error {
	mc, err := msgClientFor(c)
	if err != nil {
		return err
	}
	addr, err := mc.inboxAddr(c)
	if err != nil {
		return err
	}
	return mc.withSession(c, addr, func(ctx context.Context, s *msg.Session) error { return f(ctx, mc, s) })
}

// withSession runs f with a session to addr, ending it on Ctrl-C.
func (mc *msgClient) withSession(c *cli.Context, addr string, f func(context.Context, *msg.Session) error) error {
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := mc.session(ctx, addr)
	if err != nil {
		return err
	}
	defer s.Close()
	return f(ctx, s)
}

func printJSONLine(c *cli.Context, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintln(c.App.Writer, string(b))
}

func msgRead(c *cli.Context) error {
	return withInbox(c, func(ctx context.Context, mc *msgClient, s *msg.Session) error {
		var after uint64
		for {
			es, err := s.Fetch(ctx, after, 0)
			if err != nil || len(es) == 0 {
				return err
			}
			var ids []uint64
			for _, e := range es {
				printJSONLine(c, mc.opener().Describe(e))
				ids = append(ids, e.ID)
				after = e.ID
			}
			if c.Bool("ack") {
				if _, err := s.Ack(ctx, ids...); err != nil {
					return err
				}
			}
		}
	})
}

func msgWatch(c *cli.Context) error {
	return withInbox(c, func(ctx context.Context, mc *msgClient, s *msg.Session) error {
		var acks *msg.Session // a second connection: a TCP+TLS one carries only the watch
		if c.Bool("ack") {
			addr, _ := mc.inboxAddr(c)
			var err error
			if acks, err = mc.session(ctx, addr); err != nil {
				return err
			}
			defer acks.Close()
		}
		err := s.Watch(ctx, 0, func(e msg.Entry) error {
			printJSONLine(c, mc.opener().Describe(e))
			if acks == nil {
				return nil
			}
			_, err := acks.Ack(ctx, e.ID)
			return err
		})
		if ctx.Err() != nil {
			return nil
		}
		return err
	})
}
