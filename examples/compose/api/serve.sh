set -e
echo start >> /data/starts
mkdir -p /www
{
  echo "greeting: $(cat /etc/greeting.txt)"
  echo "key: $(cat /run/secrets/apikey)"
  echo "marker: $(cat /data/marker)"
  echo "starts: $(wc -l < /data/starts)"
} > /www/index.html
httpd -f -p 8081 -h /www &
trap 'kill $!; exit 0' TERM
wait
