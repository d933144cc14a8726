# Shared by the load scripts: a throwaway TLS certificate for a run.
# Source it, then: make_test_cert DIR. It writes DIR/ca.pem (a throwaway
# ECDSA P-256 CA) and DIR/cert.pem + DIR/key.pem (a server certificate for
# localhost and 127.0.0.1 signed by it), valid one day: clients trust
# DIR/ca.pem. Needs openssl.

make_test_cert() {
    local dir=$1
    command -v openssl >/dev/null || {
        echo "openssl is required for the TLS runs" >&2
        return 1
    }
    {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 1 -subj "/CN=tether test CA" &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                -keyout "$dir/key.pem" -out "$dir/cert.csr" -subj /CN=localhost &&
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n' >"$dir/cert.ext" &&
            openssl x509 -req -in "$dir/cert.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
                -CAcreateserial -days 1 -extfile "$dir/cert.ext" -out "$dir/cert.pem"
    } >/dev/null 2>&1 || {
        echo "openssl could not make a test certificate in $dir" >&2
        return 1
    }
}
