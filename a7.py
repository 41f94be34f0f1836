import sys,socket,time,struct,os,threading
sys.path.insert(0,'/tmp/rev40c'); from lib import rss
port,pid=int(sys.argv[1]),int(sys.argv[2])
print("rss0",rss(pid))
# 1: non-reader that floods
nr=socket.create_connection(("127.0.0.1",port)); nr.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
nr.settimeout(0.5); sent=0; t0=time.time(); mx=0
try:
    while time.time()-t0<4:
        nr.send(b"y"*65536); sent+=65536; mx=max(mx,rss(pid))
except Exception as e: print("nr ended:",repr(e))
print("nonreader sent MB",sent>>20,"max rss",mx)
# 2: a well-behaved echo meanwhile
g=socket.create_connection(("127.0.0.1",port)); g.settimeout(2)
t=time.time(); g.sendall(b"hello"); print("echo", g.recv(100), round(time.time()-t,3))
# 3: RST storm mid-data
for i in range(500):
    s=socket.create_connection(("127.0.0.1",port)); s.send(b"z"*1000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii",1,0)); s.close()
# 4: half-close after data
h=socket.create_connection(("127.0.0.1",port)); h.settimeout(2); h.sendall(b"half"); h.shutdown(socket.SHUT_WR)
d=b""
while True:
    x=h.recv(100)
    if not x: break
    d+=x
print("half-close echo", d)
time.sleep(0.5)
t=time.time(); g.sendall(b"again"); print("echo2", g.recv(100), round(time.time()-t,3), "rss", rss(pid), "fds", len(os.listdir(f"/proc/{pid}/fd")))
