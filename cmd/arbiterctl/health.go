package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthCmd asks the server's gRPC health service (grpc.health.v1.Health/
// Check) for the status of a service and exits 0 only when it is SERVING:
// a probe for a container's HEALTHCHECK or a Kubernetes exec probe. The
// server's own status ("", the default) is liveness; a service's
// (nba.v1.DecisionService) is readiness, NOT_SERVING while the replica
// cannot confirm the active definitions (Redis unreachable). Health checks
// need no token.
func healthCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "health", "[-service S] [-tls [-tls-ca FILE] [-tls-server-name NAME]]")
	var addr, service, caFile, serverName string
	var useTLS bool
	var timeout time.Duration
	addrVar(fs, e, &addr)
	fs.StringVar(&service, "service", "", "the service whose status to ask for, e.g. nba.v1.DecisionService (readiness); empty: the server's own (liveness)")
	fs.DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long (connecting included)")
	fs.BoolVar(&useTLS, "tls", false, "connect over TLS (a server started with -tls-cert); implied by -tls-ca and -tls-server-name")
	fs.StringVar(&caFile, "tls-ca", "", "verify the server's certificate against this CA (PEM `file`) instead of the system's roots")
	fs.StringVar(&serverName, "tls-server-name", "", "the `name` the server's certificate must hold, when it is not the host of -addr (e.g. a probe dialling 127.0.0.1)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if timeout <= 0 {
		return usagef("-timeout: want a positive duration")
	}
	creds := insecure.NewCredentials()
	if useTLS || caFile != "" || serverName != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return err
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("%s: no PEM certificate in it", caFile)
			}
		}
		creds = credentials.NewTLS(tc)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return err
	}
	what := service
	if what == "" {
		what = "server"
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return errors.New(what + ": " + st.String())
	}
	fmt.Fprintf(e.stdout, "%s: SERVING\n", what)
	return nil
}
