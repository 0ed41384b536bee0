package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	afs "github.com/alkdev/alknet/fs"
)

// dialed remembers, for the error a command ends with, the key this client
// presented and the address it dialled last, so that explain can say which
// key to add on which node. A command is one process, so one record does.
var dialed struct {
	sync.Mutex
	me   core.NodeID
	addr string
}

// noteKey records the key client commands present.
func noteKey(id core.NodeID) {
	dialed.Lock()
	dialed.me = id
	dialed.Unlock()
}

// noteAddr records the address a client command dials.
func noteAddr(addr string) {
	dialed.Lock()
	dialed.addr = addr
	dialed.Unlock()
}

// scopeRE finds the scope a refusal names (core.AccessControl's reasons
// and call's FORBIDDEN messages both quote it).
var scopeRE = regexp.MustCompile(`scopes? "([^"]+)"`)

// explain turns err into what the operator should read: close codes and
// TLS alerts become words, and a refusal says what to run on the node. The
// rest of err's text (which step failed) stays as it was.
func explain(err error) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	dialed.Lock()
	me, addr := dialed.me, dialed.addr
	dialed.Unlock()
	var ce *call.Error
	if errors.As(err, &ce) {
		words := callWords(ce, me, addr)
		return errors.New(strings.Replace(text, ce.Error(), words, 1))
	}
	var re *core.RelayError
	if errors.As(err, &re) && re.Code == core.RelayForbidden {
		unauth := strings.HasPrefix(re.Reason, "unknown key")
		if words := refusalWords(unauth, !unauth, re.Reason, me, re.Head); words != "" {
			return errors.New("relay: " + words)
		}
		return err
	}
	var fe *afs.RemoteError
	if errors.As(err, &fe) {
		if words := refusalWords(fe.Code == afs.CodeUnauthenticated, fe.Code == afs.CodeForbidden, fe.Message, me, addr); words != "" {
			return errors.New(strings.Replace(text, fe.Error(), words, 1))
		}
		return err
	}
	if cl, ok := core.AsCloseError(err); ok {
		words := closeWords(cl, me, addr)
		var ae *quic.ApplicationError
		for _, raw := range []string{cl.Error(), asText(err, &ae)} {
			if raw != "" && strings.Contains(text, raw) {
				return errors.New(strings.Replace(text, raw, words, 1))
			}
		}
		return errors.New(words)
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.ErrorCode.IsCryptoError() {
		alert := strings.TrimPrefix(te.ErrorCode.Message(), "tls: ")
		words := "TLS handshake failed (" + alert + ")"
		if te.Remote {
			words = "the node refused the TLS handshake (" + alert + ")"
		}
		detail := te.ErrorMessage
		for _, u := range te.Unwrap() {
			if detail == "" && u != nil && u != net.ErrClosed {
				detail = u.Error()
			}
		}
		if detail != "" {
			words += ": " + detail
		}
		return errors.New(strings.Replace(text, te.Error(), words, 1))
	}
	return err
}

// asText returns the text of the first error in err's chain of target's
// type, or "".
func asText[E error](err error, target *E) string {
	if errors.As(err, target) {
		return (*target).Error()
	}
	return ""
}

// nodeName is how messages name the node at addr: its NodeID when the
// address pins one.
func nodeName(addr string) string {
	if id, host, err := core.ParseAddr(addr); err == nil {
		if !id.IsZero() {
			return "node " + id.String()
		}
		return "the node at " + host
	}
	return "the node"
}

// unknownKey says that the node does not know this client's key, and what
// to run there.
func unknownKey(me core.NodeID, addr, scope string) string {
	key := "KEY"
	if !me.IsZero() {
		key = me.String()
	}
	if scope == "" {
		scope = "SCOPE"
	}
	return fmt.Sprintf("%s does not know your key %s: on that node run `alknet peers add NAME %s --scope %s`",
		nodeName(addr), key, key, scope)
}

// missingScope says which scope the node wants, and how to grant it.
func missingScope(addr, scope string) string {
	return fmt.Sprintf("%s refused: your key lacks the scope %s: on that node run `alknet peers grant ID %s` "+
		"(ID is your peer's id there; `alknet peers list` shows it)", nodeName(addr), scope, scope)
}

// closeWords words a connection close with an application code.
func closeWords(cl *core.CloseError, me core.NodeID, addr string) string {
	by := "the node closed the connection"
	if !cl.Remote {
		by = "the connection was closed"
	}
	scope := ""
	if m := scopeRE.FindStringSubmatch(cl.Reason); m != nil {
		scope = m[1]
	}
	switch cl.Code {
	case core.CodeForbidden:
		switch {
		case strings.HasPrefix(cl.Reason, "unknown key"):
			return unknownKey(me, addr, scope)
		case scope != "":
			return missingScope(addr, scope)
		}
		return nodeName(addr) + " refused this protocol to your key (forbidden)"
	case core.CodeRevoked:
		return by + ": your key or token was revoked or has expired"
	case core.CodeRefused:
		return by + ": it reached a connection limit; try again later"
	case core.CodeBusy:
		return by + ": it is busy; try again later"
	case core.CodeShutdown:
		return by + ": it is shutting down"
	case core.CodeIdle:
		return by + ": idle for too long"
	}
	if cl.Reason != "" && cl.Reason != cl.Code.String() {
		return by + ": " + cl.Code.String() + ": " + cl.Reason
	}
	return by + ": " + cl.Code.String()
}

// refusalWords words a protocol's refusal: an unknown key, or a missing
// scope its message names; "" when it is neither.
func refusalWords(unauthenticated, forbidden bool, message string, me core.NodeID, addr string) string {
	scope := ""
	if m := scopeRE.FindStringSubmatch(message); m != nil {
		scope = m[1]
	}
	switch {
	case unauthenticated:
		return unknownKey(me, addr, scope)
	case forbidden && scope != "":
		return missingScope(addr, scope)
	}
	return ""
}

// callWords words an alknet/call error: a refusal says what to run, and
// the details (a schema violation) follow the message, as REST shows them.
func callWords(ce *call.Error, me core.NodeID, addr string) string {
	if ce.Code == call.CodeForbidden {
		unauth := strings.Contains(ce.Message, core.ErrUnauthenticated.Error())
		if words := refusalWords(unauth, !unauth, ce.Message, me, addr); words != "" {
			return words
		}
	}
	words := ce.Error()
	var one struct {
		Error string `json:"error"`
	}
	switch {
	case len(ce.Details) == 0 || string(ce.Details) == "null":
	case json.Unmarshal(ce.Details, &one) == nil && one.Error != "":
		words += ": " + one.Error
	default:
		words += ": " + string(ce.Details)
	}
	return words
}
