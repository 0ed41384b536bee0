package main

import (
	"bufio"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/vault"
)

var initCommand = &cli.Command{
	Name:  "init",
	Usage: "create the vault and print its recovery phrase once",
	Description: "Creates the vault in the data directory from a new BIP39 recovery phrase (printed\n" +
		"once), or with --restore from a phrase read from standard input. The vault is\n" +
		"sealed with the passphrase from ALKNET_PASSPHRASE or --passphrase-file.",
	Flags: withCommon(
		&cli.IntFlag{Name: "words", Value: 12, Usage: "length of a new recovery phrase: 12 or 24 words (15, 18, 21 also work)"},
		&cli.BoolFlag{Name: "restore", Usage: "read an existing recovery phrase from standard input"},
	),
	Action: func(c *cli.Context) error {
		dir, err := dataDir(c)
		if err != nil {
			return err
		}
		pass, err := passphrase(c)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, vaultFile)
		if ok, err := vault.Exists(path); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("a vault already exists at %s; move it away first to make a new one", path)
		}
		var mnemonic string
		if c.Bool("restore") {
			line, err := bufio.NewReader(c.App.Reader).ReadString('\n')
			if err != nil && line == "" {
				return errors.New("--restore: give the recovery phrase on standard input")
			}
			mnemonic = strings.TrimSpace(line)
			if err := vault.ValidateMnemonic(mnemonic); err != nil {
				return fmt.Errorf("--restore: %w", err)
			}
		}
		v, err := createVault(path, pass, c.Int("words"), mnemonic, c.App.Writer, c.App.ErrWriter)
		if err != nil {
			return err
		}
		defer v.Close()
		key, err := v.NodeKey()
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "node ID %s\n", node.ID(key))
		return nil
	},
}

var idCommand = &cli.Command{
	Name:  "id",
	Usage: "print the NodeID, the node's ssh-ed25519 public key line and its web certificate's pin",
	Description: "Prints three lines: the NodeID; the ssh-ed25519 line of the same key; the SHA-256\n" +
		"public-key pin of the web certificate the node presents to browsers and curl on\n" +
		"h3/h2/http/1.1/doq/dot (the self-signed one, made now if the node has not made\n" +
		"it yet, or [tls] cert_file's), in the form curl --pinnedpubkey takes. With ACME\n" +
		"there is no fixed key and no third line.",
	Flags: withCommon(),
	Action: func(c *cli.Context) error {
		dir, err := dataDir(c)
		if err != nil {
			return err
		}
		key, err := nodeKey(c, dir)
		if err != nil {
			return err
		}
		line, err := sshKeyLine(key.Public().(ed25519.PublicKey))
		if err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer, node.ID(key))
		fmt.Fprintln(c.App.Writer, line)
		cfg, err := node.LoadConfig(configPath(c, dir))
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "no web certificate pin: %v\n", err)
			return nil
		}
		pin, err := node.WebPin(dir, cfg.TLS)
		if err != nil {
			return err
		}
		if pin != "" {
			fmt.Fprintln(c.App.Writer, pin)
		}
		return nil
	},
}

// sshKeyLine returns the OpenSSH authorized_keys line of a node key, with
// the NodeID as its comment.
func sshKeyLine(pub ed25519.PublicKey) (string, error) {
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	id, _ := core.NodeIDFromPublicKey(pub)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + id.String(), nil
}

var vaultCommand = &cli.Command{
	Name:  "vault",
	Usage: "inspect the key vault",
	Subcommands: []*cli.Command{{
		Name:  "derive",
		Usage: "print the public key and NodeID at a SLIP-0010 path (never a private key)",
		Flags: withCommon(
			&cli.StringFlag{Name: "path", Required: true, Usage: "hardened path, e.g. m/74'/0'/0' (the node key)"},
			&cli.StringFlag{Name: "seed-hex", Usage: "derive from this seed instead of the vault (for testing)"},
		),
		Action: func(c *cli.Context) error {
			p, err := vault.ParsePath(c.String("path"))
			if err != nil {
				return err
			}
			var k vault.Key
			if h := c.String("seed-hex"); h != "" {
				seed, err := hex.DecodeString(h)
				if err != nil {
					return fmt.Errorf("--seed-hex: %w", err)
				}
				if k, err = vault.DeriveEd25519(seed, p); err != nil {
					return err
				}
			} else {
				dir, err := dataDir(c)
				if err != nil {
					return err
				}
				v, err := openVault(c, dir)
				if err != nil {
					return err
				}
				defer v.Close()
				if k, err = v.Derive(p); err != nil {
					return err
				}
			}
			defer k.Wipe()
			id, _ := core.NodeIDFromPublicKey(k.PublicKey())
			fmt.Fprintf(c.App.Writer, "path    %s\npublic  %x\nnode ID %s\n", p, []byte(k.PublicKey()), id)
			return nil
		},
	}},
}
