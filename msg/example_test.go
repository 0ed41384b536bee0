package msg_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/msg"
)

// A sender seals a message to the recipient's messaging key; the
// recipient opens it and learns who sent it.
func ExampleSeal() {
	_, aliceNode, _ := ed25519.GenerateKey(rand.Reader)
	_, bobNode, _ := ed25519.GenerateKey(rand.Reader)
	bob, _ := core.NodeIDFromPublicKey(bobNode.Public().(ed25519.PublicKey))
	seed := make([]byte, msg.KeySize) // in alknet: the vault's key at msg.KeyPath
	rand.Read(seed)
	bobKey, _ := msg.NewKey(seed)

	env, _, err := msg.Seal(aliceNode, bobKey.PublicKey(), msg.Message{To: bob, ContentType: msg.TextType, Body: []byte("hello, bob")})
	if err != nil {
		panic(err)
	}
	o := &msg.Opener{Key: bobKey, NodeID: bob}
	m, err := o.Open(env, time.Now())
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s (%d-byte envelope)\n", m.Body, len(env))
	// Output: hello, bob (1105-byte envelope)
}

// New makes the alknet/msg handler of a node: its keys and its inbox.
// Serve it with a core.Router and core.Endpoint like any handler.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "msg-example")
	defer os.RemoveAll(dir)
	_, nodeKey, _ := ed25519.GenerateKey(rand.Reader)
	seed := make([]byte, msg.KeySize)
	rand.Read(seed)
	key, _ := msg.NewKey(seed)
	inbox, err := msg.OpenInbox(msg.InboxConfig{Path: filepath.Join(dir, "msg", "inbox.db")})
	if err != nil {
		panic(err)
	}
	defer inbox.Close()
	h, err := msg.New(msg.Config{NodeKey: nodeKey, Key: key, Inbox: inbox})
	if err != nil {
		panic(err)
	}
	fmt.Println(h.ALPNs())
	// Output: [alknet/msg]
}
