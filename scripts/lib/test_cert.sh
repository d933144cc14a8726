# Shared by the load scripts: a throwaway TLS certificate for a run.
# Source it, then: make_test_cert DIR (writes DIR/cert.pem and DIR/key.pem:
# an ECDSA P-256 self-signed certificate for localhost and 127.0.0.1, valid
# one day). Needs openssl.

make_test_cert() {
    local dir=$1
    command -v openssl >/dev/null || {
        echo "openssl is required for the TLS runs" >&2
        return 1
    }
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 1 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null || {
        echo "openssl could not make a test certificate in $dir" >&2
        return 1
    }
}
