package callbench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// The gRPC echo service is written by hand (no protoc): a service
// description with one unary method, and a codec that carries messages as
// JSON, forced on both sides so that nothing is registered globally.

// grpcEchoMethod is the full name of the echo method.
const grpcEchoMethod = "/alknet.bench.Echo/Echo"

// jsonCodec encodes gRPC messages as JSON, like alknet's calls.
type jsonCodec struct{}

// Marshal implements encoding.Codec.
func (jsonCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal implements encoding.Codec.
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Name implements encoding.Codec; it is the content-subtype on the wire.
func (jsonCodec) Name() string { return "json" }

// grpcEchoServer is the handler type of the echo service.
type grpcEchoServer interface {
	echo(ctx context.Context, in *payload) (*payload, error)
}

// grpcEcho answers its input, decoded and encoded again by the codec.
type grpcEcho struct{}

func (grpcEcho) echo(_ context.Context, in *payload) (*payload, error) { return in, nil }

// echoServiceDesc describes the echo service as protoc-gen-go-grpc would.
func echoServiceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "alknet.bench.Echo",
		HandlerType: (*grpcEchoServer)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Echo",
			// The server installs no interceptor, so the handler ignores it.
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(payload)
				if err := dec(in); err != nil {
					return nil, err
				}
				return srv.(grpcEchoServer).echo(ctx, in)
			},
		}},
		Metadata: "call_grpc.go",
	}
}

// grpcClient is a gRPC client connection and the server it calls.
type grpcClient struct {
	srv    *grpc.Server
	conn   *grpc.ClientConn
	served sync.WaitGroup
}

// startGRPC serves the echo service on 127.0.0.1 (place's address) over
// TLS 1.3 and connects a client to it.
func startGRPC(place CallPlace) (*grpcClient, error) {
	cert, pool, err := harness.SelfSigned()
	if err != nil {
		return nil, err
	}
	var ln net.Listener
	err = place.doListen(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(place.addr(), "0"))
		return err
	})
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "127.0.0.1"})),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(jsonCodec{})),
	}
	if place.dial != nil {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (c net.Conn, err error) {
			err = place.doDial(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
				return err
			})
			return c, err
		}))
	}
	g := &grpcClient{srv: grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}})),
		grpc.ForceServerCodec(jsonCodec{}),
	)}
	g.srv.RegisterService(echoServiceDesc(), grpcEcho{})
	g.served.Go(func() { _ = g.srv.Serve(ln) })
	g.conn, err = grpc.NewClient("passthrough:///"+ln.Addr().String(), opts...)
	if err != nil {
		return nil, errors.Join(err, g.close())
	}
	// The client connects lazily: make the connection now, outside any
	// timed run.
	var out payload
	in := newPayload()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.call(ctx, &in, &out); err != nil {
		return nil, errors.Join(fmt.Errorf("first call: %w", err), g.close())
	}
	return g, nil
}

func (g *grpcClient) call(ctx context.Context, in, out *payload) error {
	return g.conn.Invoke(ctx, grpcEchoMethod, in, out)
}

// close closes the client connection, then stops the server.
func (g *grpcClient) close() error {
	var err error
	if g.conn != nil {
		err = g.conn.Close()
	}
	g.srv.Stop()
	g.served.Wait()
	return err
}
