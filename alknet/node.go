package main

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/msg"
	"github.com/alkdev/alknet/vault"
)

// Files in the data directory.
const (
	vaultFile      = "vault"
	configFile     = "alknet.toml"
	knownNodesFile = "known_nodes"
)

// commonFlags are taken by every command, after the command name.
func commonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "data-dir",
			Usage:   "directory holding the vault, config and known nodes (default: $XDG_STATE_HOME/alknet or ~/.local/state/alknet)",
			EnvVars: []string{"ALKNET_DATA_DIR"},
		},
		&cli.StringFlag{
			Name:  "config",
			Usage: "config file (default: <data-dir>/alknet.toml)",
		},
		&cli.StringFlag{
			Name:  "passphrase-file",
			Usage: "file holding the vault passphrase (default: $ALKNET_PASSPHRASE, else empty)",
		},
		&cli.StringFlag{
			Name:  "log-level",
			Usage: "debug, info, warn or error",
			Value: "info",
		},
		&cli.StringSliceFlag{
			Name:    "resolver",
			Usage:   "for client commands: where to look up a node given by NodeID alone, <nodeid>@host:port or https://host/pkarr (repeatable; default [dns] resolvers)",
			EnvVars: []string{"ALKNET_RESOLVERS"},
		},
		dhtFlag,
		&cli.StringFlag{
			Name:    "via",
			Usage:   "for client commands: reach the node through this head ([NODEID@]HOST:PORT), as for a node behind NAT that joined it: directly when the head can punch a path through the NATs, else relayed (default [client] via)",
			EnvVars: []string{"ALKNET_VIA"},
		},
		&cli.BoolFlag{
			Name:    "relay-only",
			Usage:   "for client commands with --via: stay on the relay, never punch a direct path (default [client] relay_only)",
			EnvVars: []string{"ALKNET_RELAY_ONLY"},
		},
		&cli.StringFlag{
			Name:    "log-format",
			Usage:   "text (key=value) or json, one record per line on stderr",
			Value:   "text",
			EnvVars: []string{"ALKNET_LOG_FORMAT"},
		},
	}
}

// withCommon appends the common flags to a command's own.
func withCommon(flags ...cli.Flag) []cli.Flag { return append(flags, commonFlags()...) }

// dataDir returns the data directory, creating it (mode 0700). A directory
// anyone may write to is used, with a warning: whoever can write there can
// replace the config or the known nodes (the vault is refused when open,
// see vault.ErrInsecureMode).
func dataDir(c *cli.Context) (string, error) {
	dir := c.String("data-dir")
	if dir == "" {
		state := os.Getenv("XDG_STATE_HOME")
		if state == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("no data directory: set --data-dir or ALKNET_DATA_DIR (%w)", err)
			}
			state = filepath.Join(home, ".local", "state")
		}
		dir = filepath.Join(state, "alknet")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o002 != 0 {
		if logger, err := newLogger(c); err == nil {
			logger.Warn("data directory is writable by everyone: others can replace its config and known nodes",
				"dir", dir, "mode", fmt.Sprintf("%#o", fi.Mode().Perm()), "fix", "chmod 700 "+dir)
		}
	}
	return dir, nil
}

// configPath returns the config file path: --config, else in the data dir.
func configPath(c *cli.Context, dir string) string {
	if p := c.String("config"); p != "" {
		return p
	}
	return filepath.Join(dir, configFile)
}

// newLogger logs to stderr at the --log-level, in the --log-format.
func newLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", c.String("log-format"))
}

// passphrase reads the vault passphrase from --passphrase-file or
// ALKNET_PASSPHRASE; empty when neither is set.
func passphrase(c *cli.Context) ([]byte, error) {
	if f := c.String("passphrase-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	return []byte(os.Getenv("ALKNET_PASSPHRASE")), nil
}

// openVault loads the vault of the data dir. Without one it fails with a
// message naming `alknet init`: only `init` and `serve` create a vault, so a
// client command never prints a recovery phrase as a side effect.
func openVault(c *cli.Context, dir string) (*vault.Vault, error) {
	return loadVault(c, dir, nil)
}

// loadVault is openVault; create, if not nil, is called to make the vault
// when there is none.
func loadVault(c *cli.Context, dir string, create func(path string, pass []byte) (*vault.Vault, error)) (*vault.Vault, error) {
	path := filepath.Join(dir, vaultFile)
	pass, err := passphrase(c)
	if err != nil {
		return nil, err
	}
	if len(pass) > 0 || create != nil {
		// Argon2id's 64 MiB are garbage once the vault is open: hand them
		// back to the OS rather than keep them resident for the node's (or
		// a forward's) lifetime. A client's vault without a passphrase
		// opens with a few KiB (vault.UnprotectedKDFParams), and the forced
		// collection (8 ms of CPU) would only slow every command.
		defer debug.FreeOSMemory()
	}
	v, err := vault.Load(path, pass)
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, fs.ErrNotExist) && create != nil:
		return create(path, pass)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no vault in %s: run `alknet init`", dir)
	case errors.Is(err, vault.ErrWrongPassphrase):
		return nil, fmt.Errorf("%w; give the vault's passphrase in ALKNET_PASSPHRASE or --passphrase-file", err)
	}
	return nil, err
}

// recoveryPhraseFile, in the data dir, receives the recovery phrase of a
// vault that `serve` created while its stderr was no terminal (a service
// manager's log), so the phrase never lands in a log.
const recoveryPhraseFile = "recovery-phrase.txt"

// createServeVault makes the vault on a node's first start. On a terminal
// the recovery phrase is printed to stderr, as by `alknet init`; otherwise
// it is written to <dir>/recovery-phrase.txt (mode 0600) and only that
// file's path is logged.
func createServeVault(c *cli.Context, dir string, logger *slog.Logger) func(string, []byte) (*vault.Vault, error) {
	return func(path string, pass []byte) (*vault.Vault, error) {
		if f, ok := c.App.ErrWriter.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return createVault(path, pass, 12, "", c.App.ErrWriter, c.App.ErrWriter)
		}
		var phrase, warn bytes.Buffer
		v, err := createVault(path, pass, 12, "", &phrase, &warn)
		if err != nil {
			return nil, err
		}
		if warn.Len() > 0 {
			logger.Warn("the vault has an empty passphrase: anyone who can read the file has the node key; set ALKNET_PASSPHRASE or --passphrase-file when creating it", "vault", path)
		}
		if phrase.Len() == 0 { // another process created it meanwhile
			return v, nil
		}
		file := filepath.Join(dir, recoveryPhraseFile)
		if err := writeSecretFile(file, phrase.Bytes()); err != nil {
			v.Close()
			return nil, fmt.Errorf("created the vault %s but could not save its recovery phrase: %w", path, err)
		}
		logger.Warn("created the vault; its recovery phrase is in a file: write it down, then delete the file",
			"vault", path, "phrase_file", file)
		return v, nil
	}
}

// writeSecretFile creates path (mode 0600) holding data; an existing file
// is not overwritten.
func writeSecretFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Sync(), f.Close())
}

// createVault makes a vault from mnemonic, or from a new one of words words
// when mnemonic is empty; a new mnemonic is printed to phraseOut, once, and
// warnings to warnOut.
func createVault(path string, pass []byte, words int, mnemonic string, phraseOut, warnOut io.Writer) (*vault.Vault, error) {
	fresh := mnemonic == ""
	if fresh {
		var err error
		if mnemonic, err = vault.NewMnemonic(words); err != nil {
			return nil, err
		}
	}
	seed, err := vault.SeedFromMnemonic(mnemonic, "")
	if err != nil {
		return nil, err
	}
	kdf := vault.KDFParams{} // the default
	if len(pass) == 0 {
		kdf = vault.UnprotectedKDFParams()
	}
	v, err := vault.Create(path, seed, pass, kdf)
	clear(seed)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it meanwhile: use that one.
		return vault.Load(path, pass)
	}
	if err != nil {
		return nil, err
	}
	if len(pass) == 0 {
		fmt.Fprintf(warnOut, "warning: the vault %s has an empty passphrase; anyone who can read the file has the node key. Set ALKNET_PASSPHRASE or --passphrase-file when creating it to protect it.\n", path)
	}
	if fresh {
		fmt.Fprintf(phraseOut, "created the vault %s\nrecovery phrase (write it down; it is shown only this once):\n\n  %s\n\n", path, mnemonic)
	}
	return v, nil
}

// nodeKey opens the vault and returns the node key.
func nodeKey(c *cli.Context, dir string) (ed25519.PrivateKey, error) {
	v, err := openVault(c, dir)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	return v.NodeKey()
}

// nodeKeys opens the vault once and returns the node key, the X25519
// messaging key derived at msg.KeyPath and the mix key seed derived at
// msg.MixKeyPath. create, if not nil, makes the vault when there is none
// (see loadVault).
func nodeKeys(c *cli.Context, dir string, create func(string, []byte) (*vault.Vault, error)) (node.Keys, error) {
	v, err := loadVault(c, dir, create)
	if err != nil {
		return node.Keys{}, err
	}
	defer v.Close()
	var ks node.Keys
	if ks.Node, err = v.NodeKey(); err != nil {
		return node.Keys{}, err
	}
	seed := func(path string) ([]byte, error) {
		p, err := vault.ParsePath(path)
		if err != nil {
			return nil, err
		}
		k, err := v.Derive(p)
		if err != nil {
			return nil, err
		}
		defer k.Wipe()
		return bytes.Clone(k.PrivateKey().Seed()), nil
	}
	ms, err := seed(msg.KeyPath)
	if err != nil {
		return node.Keys{}, err
	}
	defer clear(ms)
	if ks.Msg, err = msg.NewKey(ms); err != nil {
		return node.Keys{}, err
	}
	ks.MixSeed, err = seed(msg.MixKeyPath)
	return ks, err
}
