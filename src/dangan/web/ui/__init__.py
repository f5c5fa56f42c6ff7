"""The web pages (zh-CN): server-rendered Jinja2 templates, own CSS and a little JS, no external assets."""
