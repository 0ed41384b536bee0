package callbench

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsSubject is the subject the NATS responder answers on.
const natsSubject = "bench.echo"

// natsReadyTimeout bounds the wait for the embedded server to accept
// connections.
const natsReadyTimeout = 10 * time.Second

// natsClient is an embedded nats-server on 127.0.0.1 (plain TCP), a
// responder connection answering natsSubject, and the client connection
// that calls it.
type natsClient struct {
	srv       *server.Server
	responder *nats.Conn
	client    *nats.Conn
}

// startNATS starts the server, subscribes the responder and connects the
// client. The responder decodes each request into a Payload and answers it
// encoded again, as the other systems' servers do; NATS runs one
// subscription's handler calls one after the other.
func startNATS() (*natsClient, error) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	n := &natsClient{srv: srv}
	srv.Start()
	if !srv.ReadyForConnections(natsReadyTimeout) {
		return nil, errors.Join(errors.New("nats-server not ready"), n.close())
	}
	if n.responder, err = nats.Connect(srv.ClientURL(), nats.Name("bench-responder")); err != nil {
		return nil, errors.Join(err, n.close())
	}
	_, err = n.responder.Subscribe(natsSubject, func(m *nats.Msg) {
		var p payload
		if json.Unmarshal(m.Data, &p) != nil {
			return // the caller times out; the benchmark sends only valid payloads
		}
		b, err := json.Marshal(p)
		if err == nil {
			_ = m.Respond(b)
		}
	})
	if err == nil {
		err = n.responder.Flush() // the server knows the subscription
	}
	if err != nil {
		return nil, errors.Join(err, n.close())
	}
	if n.client, err = nats.Connect(srv.ClientURL(), nats.Name("bench-client")); err != nil {
		return nil, errors.Join(err, n.close())
	}
	return n, nil
}

func (n *natsClient) call(ctx context.Context, in, out *payload) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	m, err := n.client.RequestWithContext(ctx, natsSubject, b)
	if err != nil {
		return err
	}
	return json.Unmarshal(m.Data, out)
}

// close closes both connections, then shuts the server down and waits for
// it.
func (n *natsClient) close() error {
	if n.client != nil {
		n.client.Close()
	}
	if n.responder != nil {
		n.responder.Close()
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	return nil
}
