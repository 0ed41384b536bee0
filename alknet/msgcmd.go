package main

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/msg"
)

// nodeFlag names the node holding this identity's inbox.
var nodeFlag = &cli.StringFlag{
	Name:  "node",
	Usage: "the node holding this identity's inbox, NODEID@HOST:PORT (default: the node running on this data dir, through its control socket, else this data dir's own node at node.listen)",
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
				"contents of --file. With --mixnet the message travels through the mixnet instead:\n" +
				"the mix directory comes from msg.directories, and the exit mixes deliver to the\n" +
				"recipient's home node; --key avoids contacting that node for the key record.",
			Flags: withCommon(
				&cli.StringFlag{Name: "file", Usage: "send this file's contents instead of TEXT"},
				&cli.StringFlag{Name: "content-type", Usage: "content type of --file (default application/octet-stream)"},
				&cli.BoolFlag{Name: "mixnet", Usage: "send through the mixnet (one random mix per layer, from the directory of msg.directories)"},
				&cli.StringFlag{Name: "key", Usage: "the recipient's key record (alkmsgkey1:…, from `alknet msg key`) instead of asking its home node"},
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
	cfg     *node.Config
	dialer  *core.Dialer
}

// msgClientFor opens the data dir's vault (once) and config.
func msgClientFor(c *cli.Context) (*msgClient, error) {
	dir, err := dataDir(c)
	if err != nil {
		return nil, err
	}
	cfg, err := node.LoadConfig(configPath(c, dir))
	if err != nil {
		return nil, err
	}
	ks, err := nodeKeys(c, dir, nil)
	if err != nil {
		return nil, err
	}
	clear(ks.MixSeed)
	d, err := dialerWith(c, dir, ks.Node)
	if err != nil {
		return nil, err
	}
	return &msgClient{nodeKey: ks.Node, key: ks.Msg, id: node.ID(ks.Node), cfg: cfg, dialer: d}, nil
}

// session dials addr for alknet/msg within dialTimeout.
func (mc *msgClient) session(ctx context.Context, addr string) (*msg.Session, error) {
	noteAddr(addr)
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
	resolve := mc.cfg.Msg.ResolveHome
	if c.Bool("mixnet") && c.IsSet("key") {
		resolve = func(core.NodeID) (string, error) { return "", nil } // no node to contact
	}
	to, addr, err := msg.ResolveRecipient(c.Args().Get(0), resolve)
	if err != nil {
		return err
	}
	m.To = to
	var rec *msg.KeyRecord
	if k := c.String("key"); k != "" {
		r, err := msg.ParseKeyRecordText(k)
		if err != nil {
			return err
		}
		if r.Node != to {
			return fmt.Errorf("--key: the record is %s's, not the recipient's", r.Node.ShortString())
		}
		rec = &r
	}
	if c.Bool("mixnet") {
		return mc.sendMixnet(c, addr, rec, m)
	}
	return mc.withSession(c, addr, func(ctx context.Context, s *msg.Session) error {
		var sent msg.Message
		var err error
		if rec != nil {
			sent, err = s.SendTo(ctx, mc.nodeKey, rec.Key, m)
		} else {
			sent, err = s.Send(ctx, mc.nodeKey, m)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "sent %s to %s\n", sent.ID, m.To)
		return nil
	})
}

// sendMixnet sends m through the mixnet. The recipient's key record is
// rec, else asked of its home node at addr.
func (mc *msgClient) sendMixnet(c *cli.Context, addr string, rec *msg.KeyRecord, m msg.Message) error {
	dirs := mc.cfg.Msg.DirectoryClient(mc.dialer)
	if dirs == nil {
		return errors.New("--mixnet: no directory nodes: set msg.directories")
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if rec == nil {
		s, err := mc.session(ctx, addr)
		if err != nil {
			return err
		}
		r, err := s.Key(ctx, m.To)
		s.Close()
		if err != nil {
			return err
		}
		rec = &r
	}
	dir, err := dirs.Get(ctx)
	if err != nil {
		return err
	}
	sent, err := msg.SendMixnet(ctx, mc.dialer, dir, mc.nodeKey, rec.Key, m)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "sent %s to %s through the mixnet\n", sent.ID, m.To)
	return nil
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
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := mc.inboxSession(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	return f(ctx, mc, s)
}

// inboxSession connects to the node holding this identity's inbox: the
// node running on this data dir through its control socket (unless --node
// names another), else --node or this node at node.listen.
func (mc *msgClient) inboxSession(ctx context.Context, c *cli.Context) (*msg.Session, error) {
	if conn, ok, err := beside(ctx, c, c.String("node"), msg.ALPN); err != nil {
		return nil, err
	} else if ok {
		return msg.NewSession(conn), nil
	}
	addr, err := mc.inboxAddr(c)
	if err != nil {
		return nil, err
	}
	return mc.session(ctx, addr)
}

// withSession runs f with a session to addr (through the control socket
// if addr is the node beside), ending it on Ctrl-C.
func (mc *msgClient) withSession(c *cli.Context, addr string, f func(context.Context, *msg.Session) error) error {
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var s *msg.Session
	if conn, ok, err := beside(ctx, c, addr, msg.ALPN); err != nil {
		return err
	} else if ok { // the node beside, as its operator
		s = msg.NewSession(conn)
	} else if s, err = mc.session(ctx, addr); err != nil {
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
				if err := ackPrinted(ctx, s, ids...); err != nil {
					return err
				}
			}
		}
	})
}

// ackTimeout bounds acknowledging messages already printed.
const ackTimeout = 10 * time.Second

// ackPrinted acknowledges messages this command has printed. --ack
// promises that what was printed leaves the inbox, so an interrupt
// (ctx ending) does not cut the acknowledgement short; ackTimeout does.
func ackPrinted(ctx context.Context, s *msg.Session, ids ...uint64) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	_, err := s.Ack(ctx, ids...)
	return err
}

func msgWatch(c *cli.Context) error {
	return withInbox(c, func(ctx context.Context, mc *msgClient, s *msg.Session) error {
		var acks *msg.Session // a second connection: a TCP+TLS one carries only the watch
		if c.Bool("ack") {
			var err error
			if acks, err = mc.inboxSession(ctx, c); err != nil {
				return err
			}
			defer acks.Close()
		}
		err := s.Watch(ctx, 0, func(e msg.Entry) error {
			printJSONLine(c, mc.opener().Describe(e))
			if acks == nil {
				return nil
			}
			return ackPrinted(ctx, acks, e.ID)
		})
		if ctx.Err() != nil {
			return nil
		}
		return err
	})
}
