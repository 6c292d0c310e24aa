#!/usr/bin/python3
"""testdns.py - a small authoritative DNS server for Postilion's tests.

Serves zone files over UDP and TCP on loopback so that every DNS-dependent
behaviour of the daemon (SPF, DKIM, DMARC, DNSBL, MX delivery) can be
tested end to end.  Run it with Debian's interpreter (python3-dnslib; the
--sign option also needs python3-dnspython and python3-cryptography):

    /usr/bin/python3 testdns.py ZONEFILE [ZONEFILE...] [--port 0]

With port 0 (the default) the kernel picks a free port that is bound for
both UDP and TCP.  The first line on stdout is always

    testdns: ready port=PORT address=ADDR rrs=N

and is flushed at once, so a test can read the port and start.

Answers are what a real authoritative server sends: AA set; NOERROR with
records; NODATA (NOERROR, empty answer, the zone's SOA in the authority
section with TTL min(SOA TTL, SOA minimum)); NXDOMAIN with the SOA;
empty non-terminals exist; CNAME chains are followed inside the served
zones (the rcode is the one of the last name, RFC 6604); `*` wildcards
are synthesised (RFC 4592); names outside every zone get REFUSED.  Over
UDP an answer larger than the client's EDNS size (512 without EDNS) is
truncated (TC) so that the client retries over TCP.  TXT records longer
than 255 octets are written in the zone file as several "..." strings.

Special names, by suffix (each option repeatable; the defaults are shown):
  --servfail servfail.test     answer SERVFAIL
  --drop timeout.test          never answer (the client must time out)
  --refused refused.test       answer REFUSED
  --delay slow.test=300        answer from the zone after 300 ms

DNSSEC: --sign ORIGIN signs that zone at start (a fresh ECDSA P-256 key,
NSEC chain, signatures valid for a day) and --trust-anchor FILE writes the
zone's DNSKEY there, ready for [dns] trust_anchor.  Signatures are sent
when the query has the DO bit.  An owner name whose first label starts
with "bogus" gets a corrupted signature, so a validator calls it bogus.

--query-log FILE appends "NAME TYPE" for every query received, so tests
can count what reached the server (caching).  --exit-with-stdin stops the
server when its stdin reaches end of file (the test that spawned it died).
"""

import argparse
import asyncio
import os
import socket
import struct
import sys
import time

from dnslib import (CLASS, QTYPE, RCODE, RD, RR, DNSError, DNSHeader,
                    DNSLabel, DNSRecord, EDNS0)

MAX_CHASE = 16          # CNAME links followed inside our zones
EDNS_SIZE = 1232        # what we announce, like current resolvers
MAX_TCP_MESSAGE = 65535


def name_key(label):
    """A hashable, case-folded form of a DNSLabel (tuple of labels)."""
    return tuple(part.lower() for part in label.label)


def is_under(key, suffix_key):
    return len(key) >= len(suffix_key) and \
        key[len(key) - len(suffix_key):] == suffix_key


def canonical_sort_key(key):
    """RFC 4034 6.1 canonical order: compare labels right to left."""
    return tuple(reversed(key))


class Zone:
    """One zone: its origin, SOA and records, indexed by owner name."""

    def __init__(self, soa):
        self.origin = name_key(soa.rname)
        self.soa = soa
        self.records = {}       # key -> [RR]
        self.existing = set()   # owners and their ancestors inside the zone
        self.signer = None      # Signer when --sign names this zone

    def add(self, rr):
        key = name_key(rr.rname)
        self.records.setdefault(key, []).append(rr)
        while is_under(key, self.origin):
            self.existing.add(key)
            if key == self.origin:
                break
            key = key[1:]

    def negative_soa(self):
        """The SOA for a negative answer: TTL min(TTL, MINIMUM) (RFC 2308)."""
        soa = self.soa
        return RR(soa.rname, QTYPE.SOA, CLASS.IN,
                  min(soa.ttl, soa.rdata.times[4]), soa.rdata)

    def lookup(self, key):
        """Records at `key`, synthesised from a wildcard when needed.
        Returns (records, exists)."""
        if key in self.records:
            return self.records[key], True
        if key in self.existing:
            return [], True      # an empty non-terminal
        encloser = key[1:]
        while encloser not in self.existing and len(encloser) > len(self.origin):
            encloser = encloser[1:]
        wildcard = (b'*',) + encloser
        if wildcard in self.records:
            name = DNSLabel(list(key))
            return [RR(name, rr.rtype, rr.rclass, rr.ttl, rr.rdata)
                    for rr in self.records[wildcard]], True
        return [], False


class Signer:
    """Signs one zone with dnspython (DNSSEC tests only)."""

    def __init__(self, zone):
        import dns.dnssec
        import dns.name
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset
        from cryptography.hazmat.primitives.asymmetric import ec
        self.dns = dns
        self.zone = zone
        self.origin = dns.name.from_text(str(zone.soa.rname))
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.dnskey = dns.dnssec.make_dnskey(
            self.key.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256,
            flags=257)
        for key in zone.records:
            if b'*' in key:
                sys.exit("testdns: --sign does not support wildcards (%s)"
                         % DNSLabel(list(key)))
        zone.add(self.to_dnslib(self.origin, 3600, self.dnskey))
        self.nsec = self.make_nsec_chain()
        self.signatures = {}    # (key, rtype) -> [RR RRSIG]
        now = int(time.time())
        for key, rrs in list(zone.records.items()):
            for rtype in sorted({rr.rtype for rr in rrs}):
                self.sign(key, [rr for rr in rrs if rr.rtype == rtype], now)
        for key, rr in self.nsec.items():
            self.sign(key, [rr], now)

    def to_dnslib(self, name, ttl, rdata):
        return RR(DNSLabel(name.to_text()), int(rdata.rdtype), CLASS.IN, ttl,
                  RD(rdata.to_wire()))

    def to_dnspython(self, rrs):
        dns = self.dns
        rdatas = []
        for rr in rrs:
            if type(rr.rdata) is RD:
                rdatas.append(dns.rdata.from_wire(
                    dns.rdataclass.IN, rr.rtype, rr.rdata.data, 0,
                    len(rr.rdata.data)))
            else:
                rdatas.append(dns.rdata.from_text(
                    dns.rdataclass.IN, QTYPE.get(rr.rtype),
                    rr.rdata.toZone()))
        name = dns.name.from_text(str(rrs[0].rname))
        return dns.rrset.from_rdata_list(name, rrs[0].ttl, rdatas)

    def make_nsec_chain(self):
        owners = sorted(self.zone.records, key=canonical_sort_key)
        chain = {}
        for index, key in enumerate(owners):
            following = owners[(index + 1) % len(owners)]
            types = sorted({QTYPE.get(rr.rtype) for rr in self.zone.records[key]}
                           | {'RRSIG', 'NSEC'})
            rdata = self.dns.rdata.from_text(
                self.dns.rdataclass.IN, 'NSEC',
                '%s %s' % (DNSLabel(list(following)), ' '.join(types)))
            name = self.dns.name.from_text(str(DNSLabel(list(key))))
            chain[key] = self.to_dnslib(name, self.zone.negative_soa().ttl,
                                        rdata)
        return chain

    def sign(self, key, rrs, now):
        rrset = self.to_dnspython(rrs)
        rrsig = self.dns.dnssec.sign(rrset, self.key, self.origin, self.dnskey,
                                     inception=now - 3600,
                                     expiration=now + 86400)
        wire = bytearray(rrsig.to_wire())
        if key[0].startswith(b'bogus'):
            wire[-1] ^= 0xff
        rr = RR(rrs[0].rname, QTYPE.RRSIG, CLASS.IN, rrs[0].ttl, RD(bytes(wire)))
        self.signatures.setdefault((key, rrs[0].rtype), []).append(rr)

    def signatures_for(self, rrs):
        out = []
        seen = set()
        for rr in rrs:
            ident = (name_key(rr.rname), rr.rtype)
            if ident not in seen:
                seen.add(ident)
                out.extend(self.signatures.get(ident, []))
        return out

    def covering_nsec(self, key):
        """The NSEC whose owner precedes `key` in canonical order."""
        owners = sorted(self.nsec, key=canonical_sort_key)
        best = owners[-1]
        for owner in owners:
            if canonical_sort_key(owner) <= canonical_sort_key(key):
                best = owner
        return self.nsec[best]

    def trust_anchor_text(self):
        return '%s 3600 IN DNSKEY %s\n' % (self.origin.to_text(),
                                          self.dnskey.to_text())


class Answerer:
    """Builds the reply for one query; returns (reply or None, delay_s)."""

    def __init__(self, zones, options):
        self.zones = zones
        self.servfail = [name_key(DNSLabel(s)) for s in options.servfail]
        self.drop = [name_key(DNSLabel(s)) for s in options.drop]
        self.refused = [name_key(DNSLabel(s)) for s in options.refused]
        self.delay = []
        for item in options.delay:
            suffix, _, millis = item.partition('=')
            self.delay.append((name_key(DNSLabel(suffix)), int(millis or 300)))

    def find_zone(self, key):
        best = None
        for zone in self.zones:
            if is_under(key, zone.origin) and \
                    (best is None or len(zone.origin) > len(best.origin)):
                best = zone
        return best

    @staticmethod
    def matches(key, suffixes):
        return any(is_under(key, suffix) for suffix in suffixes)

    def answer(self, request):
        reply = DNSRecord(DNSHeader(id=request.header.id, qr=1, aa=1, ra=0,
                                    rd=request.header.rd,
                                    opcode=request.header.opcode), q=request.q)
        opt = [rr for rr in request.ar if rr.rtype == QTYPE.OPT]
        dnssec_ok = bool(opt) and bool(opt[0].ttl & 0x8000)
        if opt:
            reply.add_ar(EDNS0(udp_len=EDNS_SIZE,
                               flags='do' if dnssec_ok else ''))
        if len(request.questions) != 1 or request.header.opcode != 0:
            reply.header.rcode = RCODE.NOTIMP if request.header.opcode \
                else RCODE.FORMERR
            return reply, 0
        key = name_key(request.q.qname)
        delay = 0
        if self.matches(key, self.drop):
            return None, 0
        if self.matches(key, self.servfail):
            reply.header.aa = 0
            reply.header.rcode = RCODE.SERVFAIL
            return reply, 0
        if self.matches(key, self.refused):
            reply.header.aa = 0
            reply.header.rcode = RCODE.REFUSED
            return reply, 0
        for suffix, millis in self.delay:
            if is_under(key, suffix):
                delay = millis / 1000.0
        if self.find_zone(key) is None:
            reply.header.aa = 0
            reply.header.rcode = RCODE.REFUSED
            return reply, delay
        self.fill(reply, key, request.q.qtype, dnssec_ok)
        return reply, delay

    def fill(self, reply, key, qtype, dnssec_ok):
        """Answer section by following CNAMEs; authority for negatives."""
        seen = set()
        for _ in range(MAX_CHASE):
            zone = self.find_zone(key)
            if zone is None or key in seen:
                return            # the chain leaves our zones (or loops)
            seen.add(key)
            signer = zone.signer if dnssec_ok else None
            records, exists = zone.lookup(key)
            cnames = [rr for rr in records if rr.rtype == QTYPE.CNAME]
            if cnames and qtype not in (QTYPE.CNAME, QTYPE.ANY):
                self.add_answers(reply, cnames[:1], signer)
                key = name_key(cnames[0].rdata.label)
                continue
            wanted = [rr for rr in records
                      if rr.rtype == qtype or qtype == QTYPE.ANY]
            if wanted:
                self.add_answers(reply, wanted, signer)
                return
            if not exists:
                reply.header.rcode = RCODE.NXDOMAIN
            self.add_negative(reply, zone, key, exists, signer)
            return

    @staticmethod
    def add_answers(reply, rrs, signer):
        for rr in rrs:
            reply.add_answer(rr)
        if signer:
            for rr in signer.signatures_for(rrs):
                reply.add_answer(rr)

    @staticmethod
    def add_negative(reply, zone, key, exists, signer):
        soa = zone.negative_soa()
        reply.add_auth(soa)
        if not signer:
            return
        for rr in signer.signatures_for([soa]):
            reply.add_auth(rr)
        proofs = []
        if exists:
            proofs.append(signer.nsec.get(key) or signer.covering_nsec(key))
        else:
            proofs.append(signer.covering_nsec(key))
            encloser = key[1:]
            while encloser not in zone.existing:
                encloser = encloser[1:]
            proofs.append(signer.covering_nsec((b'*',) + encloser))
        unique = []
        for rr in proofs:
            if all(rr is not other for other in unique):
                unique.append(rr)
        for rr in unique:
            reply.add_auth(rr)
        for rr in signer.signatures_for(unique):
            reply.add_auth(rr)


class QueryLog:
    def __init__(self, path):
        self.file = open(path, 'a', buffering=1) if path else None

    def write(self, request):
        if self.file:
            self.file.write('%s %s\n' % (str(request.q.qname).rstrip('.') or '.',
                                         QTYPE.get(request.q.qtype)))


def parse_request(data):
    try:
        return DNSRecord.parse(data)
    except (DNSError, struct.error, IndexError, ValueError, UnicodeError):
        return None


def pack_for_udp(reply, request):
    """Packs `reply`; when it does not fit the client's buffer, sends the
    header and question with TC set instead (RFC 1035 4.2.1, RFC 6891)."""
    limit = 512
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            limit = max(512, rr.rclass)
    data = reply.pack()
    if len(data) <= limit:
        return data
    short = DNSRecord(DNSHeader(id=reply.header.id, qr=1, aa=reply.header.aa,
                                tc=1, rd=reply.header.rd,
                                rcode=reply.header.rcode), q=reply.q)
    return short.pack()


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, answerer, log):
        self.answerer = answerer
        self.log = log
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, address):
        request = parse_request(data)
        if request is None or not request.questions:
            return
        self.log.write(request)
        reply, delay = self.answerer.answer(request)
        if reply is None:
            return
        packet = pack_for_udp(reply, request)
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self.send, packet, address)

    def send(self, packet, address):
        if not self.transport.is_closing():
            self.transport.sendto(packet, address)

    def error_received(self, exc):
        pass


async def serve_tcp_client(answerer, log, reader, writer):
    """Answers every query on one TCP connection, possibly out of order."""
    lock = asyncio.Lock()

    async def respond(reply, delay):
        await asyncio.sleep(delay)
        data = reply.pack()[:MAX_TCP_MESSAGE]
        async with lock:
            if not writer.is_closing():
                writer.write(struct.pack('!H', len(data)) + data)

    tasks = set()
    try:
        while True:
            size = struct.unpack('!H', await reader.readexactly(2))[0]
            request = parse_request(await reader.readexactly(size))
            if request is None or not request.questions:
                break
            log.write(request)
            reply, delay = answerer.answer(request)
            if reply is not None:
                task = asyncio.ensure_future(respond(reply, delay))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    writer.close()


def bind_sockets(address, port):
    """A UDP and a TCP socket on the same port; with port 0, retries until
    the kernel's UDP choice is also free for TCP."""
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    for _ in range(50):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        udp.bind((address, port))
        bound = udp.getsockname()[1]
        tcp = socket.socket(family, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((address, bound))
        except OSError:
            udp.close()
            tcp.close()
            if port:
                raise
            continue
        tcp.listen(128)
        udp.setblocking(False)
        tcp.setblocking(False)
        return udp, tcp, bound
    raise OSError('no port free for both UDP and TCP')


def load_zones(paths):
    zones = []
    count = 0
    for path in paths:
        with open(path, encoding='utf-8') as handle:
            rrs = RR.fromZone(handle.read())
        for rr in rrs:
            if rr.rtype == QTYPE.SOA:
                zones.append(Zone(rr))
        for rr in rrs:
            owner = name_key(rr.rname)
            candidates = [z for z in zones if is_under(owner, z.origin)]
            if not candidates:
                sys.exit('testdns: %s: %s is outside every zone (add a SOA)'
                         % (path, rr.rname))
            max(candidates, key=lambda z: len(z.origin)).add(rr)
            count += 1
    return zones, count


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        description='Authoritative test DNS server (loopback).')
    parser.add_argument('zones', nargs='+', metavar='ZONEFILE')
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--address', default='127.0.0.1')
    parser.add_argument('--servfail', action='append')
    parser.add_argument('--drop', action='append')
    parser.add_argument('--refused', action='append')
    parser.add_argument('--delay', action='append')
    parser.add_argument('--sign', action='append', default=[])
    parser.add_argument('--trust-anchor')
    parser.add_argument('--query-log')
    parser.add_argument('--port-file')
    parser.add_argument('--exit-with-stdin', action='store_true')
    # Compatibility with the reference script: ZONEFILE PORT [ADDR].
    positional = [a for a in argv if not a.startswith('-')]
    if len(positional) >= 2 and positional[1].isdigit() and \
            not os.path.exists(positional[1]):
        index = argv.index(positional[1])
        argv = argv[:index] + ['--port', positional[1]] + argv[index + 1:]
        if len(positional) >= 3 and not os.path.exists(positional[2]):
            index = argv.index(positional[2])
            argv = argv[:index] + ['--address', positional[2]] + argv[index + 1:]
    options = parser.parse_args(argv)
    options.servfail = options.servfail or ['servfail.test']
    options.drop = options.drop or ['timeout.test']
    options.refused = options.refused or ['refused.test']
    options.delay = options.delay or ['slow.test=300']
    return options


def setup_signing(zones, options):
    anchors = []
    for origin in options.sign:
        key = name_key(DNSLabel(origin))
        zone = next((z for z in zones if z.origin == key), None)
        if zone is None:
            sys.exit('testdns: --sign %s: no such zone' % origin)
        zone.signer = Signer(zone)
        anchors.append(zone.signer.trust_anchor_text())
    if options.trust_anchor:
        with open(options.trust_anchor, 'w', encoding='ascii') as handle:
            handle.writelines(anchors)


async def main(argv):
    options = parse_arguments(argv)
    zones, count = load_zones(options.zones)
    setup_signing(zones, options)
    answerer = Answerer(zones, options)
    log = QueryLog(options.query_log)
    udp, tcp, port = bind_sockets(options.address, options.port)
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: UdpProtocol(answerer, log),
                                        sock=udp)
    server = await asyncio.start_server(
        lambda r, w: serve_tcp_client(answerer, log, r, w), sock=tcp)
    if options.port_file:
        with open(options.port_file + '.tmp', 'w', encoding='ascii') as handle:
            handle.write('%d\n' % port)
        os.rename(options.port_file + '.tmp', options.port_file)
    print('testdns: ready port=%d address=%s rrs=%d' %
          (port, options.address, count), flush=True)
    stop = loop.create_future()
    if options.exit_with_stdin:
        def on_stdin():
            if not os.read(sys.stdin.fileno(), 4096) and not stop.done():
                stop.set_result(None)
        loop.add_reader(sys.stdin.fileno(), on_stdin)
    async with server:
        await stop


if __name__ == '__main__':
    try:
        asyncio.run(main(sys.argv[1:]))
    except KeyboardInterrupt:
        pass
